//! Small helpers around tract: loading an ONNX graph once and compiling one plan per input shape.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::tract_data::prelude::Blob;
use tract_onnx::tract_core::tract_linalg::mmm::EagerPackedInput;

use crate::error::RecognizerError;

/// An ONNX model parsed once, compiled (optimised) lazily for each input shape it is run with.
/// At most `max_plans` compiled plans are kept (each holds its own tables; packed weights that
/// another plan packed alike are held once, [`PackedWeights`]): the least recently used is
/// dropped first. A camera's frames all have one size, so its cache holds a plan or two; a
/// folder of photos of many sizes recompiles now and then instead of growing without bound.
pub(crate) struct ShapeCachedModel {
    path: PathBuf,
    base: InferenceModel,
    plans: Mutex<Plans>,
    max_plans: usize,
}

#[derive(Default)]
struct Plans {
    /// Shape → (plan, last use).
    by_shape: HashMap<Vec<usize>, (Arc<TypedRunnableModel>, u64)>,
    clock: u64,
    compiled: u64,
    packed: PackedWeights,
    /// What the last compiled plan shared with the earlier ones.
    last_sharing: Sharing,
}

/// The packed weights of every plan of one model, held once: plans compiled for different input
/// shapes mostly pack a weight matrix into the same bytes (the packing depends on the weights and
/// the kernel, not on the input's size), and tract gives each plan its own copy. Held weakly:
/// the bytes go when the last plan using them is evicted.
#[derive(Default)]
struct PackedWeights {
    hasher: RandomState,
    by_hash: HashMap<u64, Vec<Weak<Blob>>>,
}

/// What [`PackedWeights::share`] found in one plan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sharing {
    /// Packed weight matrices in the plan.
    pub matrices: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Of those, bytes an earlier plan holds already (now shared, the plan's copy dropped).
    pub shared_bytes: usize,
}

impl PackedWeights {
    /// The held copy of `blob` if an earlier plan packed the same bytes, else `blob`, held
    /// from now on.
    fn intern(&mut self, blob: &Arc<Blob>) -> Arc<Blob> {
        let entries = self
            .by_hash
            .entry(self.hasher.hash_one(&**blob))
            .or_default();
        entries.retain(|w| w.strong_count() > 0);
        if let Some(held) = entries
            .iter()
            .filter_map(Weak::upgrade)
            .find(|held| **held == **blob)
        {
            return held;
        }
        entries.push(Arc::downgrade(blob));
        blob.clone()
    }

    /// Replaces the packed weights baked into `model`'s matrix products by the copies held
    /// already, holding the new ones.
    fn share(&mut self, model: &mut TypedModel) -> Sharing {
        let mut found = Sharing::default();
        for node in model.nodes.iter_mut() {
            let Some(op) = node.op_as_mut::<OptMatMul>() else {
                continue;
            };
            for micro in op.micro_ops.iter_mut() {
                let ProtoFusedSpec::AddMatMul { a, b, .. } = micro else {
                    continue;
                };
                for operand in [a, b] {
                    let MatMulOperand::Const(value) = operand else {
                        continue;
                    };
                    let Some(eager) = value.downcast_mut::<EagerPackedInput>() else {
                        continue;
                    };
                    let held = self.intern(&eager.packed);
                    found.matrices += 1;
                    found.bytes += held.len();
                    if !Arc::ptr_eq(&held, &eager.packed) {
                        found.shared_bytes += held.len();
                        eager.packed = held;
                    }
                }
            }
        }
        found
    }
}

impl std::fmt::Debug for ShapeCachedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShapeCachedModel")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ShapeCachedModel {
    pub(crate) fn load(path: &Path, max_plans: usize) -> Result<Self, RecognizerError> {
        if !path.is_file() {
            return Err(RecognizerError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let load_error = |e: TractError| RecognizerError::ModelLoad {
            path: path.to_path_buf(),
            source: e.into(),
        };
        let mut base = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(load_error)?;
        widen_half_weights(&mut base).map_err(load_error)?;
        Ok(Self {
            path: path.to_path_buf(),
            base,
            plans: Mutex::new(Plans::default()),
            max_plans: max_plans.max(1),
        })
    }

    #[cfg(test)]
    pub(crate) fn base(&self) -> &InferenceModel {
        &self.base
    }

    /// The plan cache, also after a panic elsewhere while it was held (it holds no half-done
    /// state: a plan is inserted whole).
    fn plans(&self) -> std::sync::MutexGuard<'_, Plans> {
        match self.plans.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn plan(&self, shape: &[usize]) -> Result<Arc<TypedRunnableModel>, RecognizerError> {
        let mut plans = self.plans();
        plans.clock += 1;
        let now = plans.clock;
        if let Some((plan, used)) = plans.by_shape.get_mut(shape) {
            *used = now;
            return Ok(plan.clone());
        }
        let fact = InferenceFact::dt_shape(f32::datum_type(), shape);
        let compile_error = |e: TractError| RecognizerError::ModelLoad {
            path: self.path.clone(),
            source: e.into(),
        };
        let mut optimized = self
            .base
            .clone()
            .with_input_fact(0, fact)
            .and_then(|m| m.into_optimized())
            .map_err(compile_error)?;
        plans.last_sharing = plans.packed.share(&mut optimized);
        let plan = optimized.into_runnable().map_err(compile_error)?;
        while plans.by_shape.len() >= self.max_plans {
            let Some(oldest) = plans
                .by_shape
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            plans.by_shape.remove(&oldest);
        }
        plans.compiled += 1;
        plans.by_shape.insert(shape.to_vec(), (plan.clone(), now));
        Ok(plan)
    }

    /// (plans held now, plans compiled so far).
    #[cfg(test)]
    pub(crate) fn plan_counts(&self) -> (usize, u64) {
        let plans = self.plans();
        (plans.by_shape.len(), plans.compiled)
    }

    /// What the last compiled plan shared with the earlier ones.
    #[cfg(test)]
    pub(crate) fn last_sharing(&self) -> Sharing {
        let plans = self.plans();
        plans.last_sharing
    }

    /// Runs the model on one f32 tensor of the given shape, which `fill` writes (it starts at
    /// zero) where the model will read it, so the input is held once, not as a buffer and its
    /// copy; returns the first output, flat, and its shape.
    pub(crate) fn run(
        &self,
        stage: &'static str,
        shape: &[usize],
        fill: impl FnOnce(&mut [f32]),
    ) -> Result<(Vec<usize>, Vec<f32>), RecognizerError> {
        let plan = self.plan(shape)?;
        let inference = |e: TractError| RecognizerError::Inference {
            stage,
            source: e.into(),
        };
        let mut input = Tensor::zero::<f32>(shape).map_err(inference)?;
        {
            let mut view = input.to_plain_array_view_mut::<f32>().map_err(inference)?;
            let data = view
                .as_slice_mut()
                .ok_or_else(|| inference(TractError::msg("input tensor not contiguous")))?;
            fill(data);
        }
        let outputs = plan.run(tvec!(input.into())).map_err(inference)?;
        let first = outputs
            .first()
            .ok_or_else(|| inference(TractError::msg("model produced no output")))?;
        let out_shape = first.shape().to_vec();
        // One copy of the whole buffer (PP-OCR's reader gives 0.5 M values a read).
        let values: Vec<f32> = first
            .try_as_plain_ram()
            .and_then(|plain| plain.as_slice::<f32>())
            .map_err(inference)?
            .to_vec();
        Ok((out_shape, values))
    }
}

/// Makes the weights a file stores as float16 (`scripts/halve_weights.py`: each followed by a
/// cast to float32) float32 once, at load; returns how many it widened. The casts, now from
/// float32 to float32, vanish when a plan is compiled, and every plan shares the base model's
/// weights as with a float32 file. Left as float16, each plan would fold the casts into
/// float32 weights of its own.
fn widen_half_weights(model: &mut InferenceModel) -> TractResult<usize> {
    use tract_onnx::tract_hir::ops::konst::Const;
    let mut widened = 0;
    for id in 0..model.nodes().len() {
        let wide = match model.node(id).op_as::<Const>() {
            Some(k) if k.val().datum_type() == DatumType::F16 => {
                k.val().cast_to::<f32>()?.into_owned()
            }
            _ => continue,
        };
        model.node_mut(id).op = Box::new(Const::new(wide.into_arc_tensor())?);
        model.set_outlet_fact(OutletId::new(id, 0), InferenceFact::default())?;
        widened += 1;
    }
    Ok(widened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_cache_keeps_the_most_recently_used_shapes_within_its_bound() {
        let path = crate::default_models_dir().join(crate::READER_FILE);
        let model = ShapeCachedModel::load(&path, 2).expect("scripts/fetch-models was run");
        let run = |w: usize| {
            let shape = [1, 3, 48, w];
            model.run("read", &shape, |_| ()).expect("runs");
        };
        // 320 is used again before 480 arrives, so 400 is the one dropped; 320 stays cached.
        for w in [320, 400, 320, 480, 320] {
            run(w);
        }
        assert_eq!(model.plan_counts(), (2, 3));
        run(400);
        assert_eq!(model.plan_counts(), (2, 4));
    }

    #[test]
    fn plans_for_other_input_sizes_share_the_first_plans_packed_weights() {
        // The reader's packing is the same at every width (measured: 9.3 of its 10.0 MB
        // shared); the detector's kernels, so their packing, change with the input's size for
        // part of its matrices (1.6 of 4.2 MB shared between its first and finer passes).
        for (file, shapes, most) in [
            (crate::READER_FILE, [[1, 3, 48, 320], [1, 3, 48, 400]], true),
            (
                crate::DETECTOR_FILE,
                [[1, 3, 352, 640], [1, 3, 544, 960]],
                false,
            ),
        ] {
            let path = crate::default_models_dir().join(file);
            let model = ShapeCachedModel::load(&path, 2).expect("scripts/fetch-models was run");
            let alone = ShapeCachedModel::load(&path, 1).expect("loads");
            let input = |data: &mut [f32]| data.fill(0.25);
            model.run("test", &shapes[0], input).expect("runs");
            let first = model.last_sharing();
            assert!(first.matrices > 0 && first.bytes > 0, "{file}: {first:?}");
            assert_eq!(first.shared_bytes, 0, "{file}: nothing to share with yet");
            let shared = model.run("test", &shapes[1], input).expect("runs");
            let second = model.last_sharing();
            let share = if most {
                second.bytes / 2
            } else {
                second.bytes / 5
            };
            assert!(
                second.shared_bytes > share,
                "{file}: the second plan holds the first's packed weights: {second:?}"
            );
            // Sharing changes where the weights are held, not what the plan computes.
            let own = alone.run("test", &shapes[1], input).expect("runs");
            assert_eq!(shared, own, "{file}");
        }
    }

    #[test]
    fn weights_stored_as_float16_are_float32_once_loaded() {
        for file in [crate::DETECTOR_FILE, crate::READER_FILE] {
            let path = crate::default_models_dir().join(file);
            let mut raw = tract_onnx::onnx()
                .model_for_path(&path)
                .expect("scripts/fetch-models was run");
            let halves = |m: &InferenceModel| {
                m.nodes()
                    .iter()
                    .filter_map(|n| n.op_as::<tract_onnx::tract_hir::ops::konst::Const>())
                    .filter(|k| k.val().datum_type() == DatumType::F16)
                    .count()
            };
            let stored = halves(&raw);
            assert!(stored > 0, "{file} stores its weights as float16");
            assert_eq!(widen_half_weights(&mut raw).expect("widens"), stored);
            let loaded = ShapeCachedModel::load(&path, 1).expect("loads");
            assert_eq!(halves(loaded.base()), 0, "{file}: no float16 weight left");
        }
        // And the model still computes: the reader's plan compiles and runs.
        let reader =
            ShapeCachedModel::load(&crate::default_models_dir().join(crate::READER_FILE), 1)
                .expect("loads");
        let (shape, out) = reader.run("read", &[1, 3, 48, 320], |_| ()).expect("runs");
        assert_eq!(shape.len(), 3);
        assert!(out.iter().all(|p| p.is_finite()));
    }
}
