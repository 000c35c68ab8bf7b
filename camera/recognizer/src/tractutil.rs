//! Small helpers around tract: loading an ONNX graph once and compiling one plan per input shape.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::error::RecognizerError;

/// An ONNX model parsed once, compiled (optimised) lazily for each input shape it is run with.
pub(crate) struct ShapeCachedModel {
    path: PathBuf,
    base: InferenceModel,
    plans: Mutex<HashMap<Vec<usize>, Arc<TypedRunnableModel>>>,
    max_plans: usize,
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
        let base =
            tract_onnx::onnx()
                .model_for_path(path)
                .map_err(|e| RecognizerError::ModelLoad {
                    path: path.to_path_buf(),
                    source: e.into(),
                })?;
        Ok(Self {
            path: path.to_path_buf(),
            base,
            plans: Mutex::new(HashMap::new()),
            max_plans,
        })
    }

    fn plan(&self, shape: &[usize]) -> Result<Arc<TypedRunnableModel>, RecognizerError> {
        let mut plans = match self.plans.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(plan) = plans.get(shape) {
            return Ok(plan.clone());
        }
        let fact = InferenceFact::dt_shape(f32::datum_type(), shape);
        let plan = self
            .base
            .clone()
            .with_input_fact(0, fact)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| RecognizerError::ModelLoad {
                path: self.path.clone(),
                source: e.into(),
            })?;
        if plans.len() >= self.max_plans {
            plans.clear();
        }
        plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }

    /// Runs the model on one f32 tensor of the given shape; returns the first output, flat, and
    /// its shape.
    pub(crate) fn run(
        &self,
        stage: &'static str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<(Vec<usize>, Vec<f32>), RecognizerError> {
        let plan = self.plan(shape)?;
        let inference = |e: TractError| RecognizerError::Inference {
            stage,
            source: e.into(),
        };
        let input = Tensor::from_shape(shape, data).map_err(inference)?;
        let outputs = plan.run(tvec!(input.into())).map_err(inference)?;
        let first = outputs
            .first()
            .ok_or_else(|| inference(TractError::msg("model produced no output")))?;
        let out_shape = first.shape().to_vec();
        let values: Vec<f32> = first
            .to_plain_array_view::<f32>()
            .map_err(inference)?
            .iter()
            .copied()
            .collect();
        Ok((out_shape, values))
    }
}
