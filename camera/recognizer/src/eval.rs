//! Measurement on a folder of annotated photos (`anpr-camera eval DIR`).
//!
//! Layout: `DIR/<subset>/NAME.jpg` beside `NAME.txt`, whose line is tab-separated
//! `filename x y w h PLATE`. Images directly in `DIR` form a subset named `.`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::{
    BBox, PlateRegion, Recognizer, RecognizerConfig, RecognizerError, edit_distance, open_image,
};

/// One ground-truth line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    /// The image file name.
    pub file: String,
    /// The plate's box.
    pub bbox: BBox,
    /// The plate's text.
    pub plate: String,
}

/// Parses `filename x y w h PLATE` (tabs, or any whitespace).
pub fn parse_truth_line(line: &str) -> Result<Truth, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 {
        return Err(format!("expected 6 fields, found {}", fields.len()));
    }
    let num = |i: usize| -> Result<f32, String> {
        fields[i]
            .parse::<f32>()
            .map_err(|_| format!("field {} is not a number: {:?}", i + 1, fields[i]))
    };
    let plate: String = fields[5..].concat().to_ascii_uppercase();
    Ok(Truth {
        file: fields[0].to_string(),
        bbox: BBox::new(num(1)?, num(2)?, num(3)?, num(4)?),
        plate,
    })
}

/// Whether a predicted box finds the true plate: IoU >= 0.5, or the true centre inside it.
pub fn box_found(predicted: &BBox, truth: &BBox) -> bool {
    let (cx, cy) = truth.center();
    predicted.iou(truth) >= 0.5 || predicted.contains(cx, cy)
}

/// The outcome on one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// Subset (subfolder) name.
    pub subset: String,
    /// Image file.
    pub file: String,
    /// True plate.
    pub truth: String,
    /// Top read, empty if none.
    pub predicted: String,
    /// Its confidence.
    pub confidence: f32,
    /// Whether the confirming reader read it alike ([`crate::PlateRead::confirmed`]).
    pub confirmed: bool,
    /// Plate found by the top read's box.
    pub found: bool,
    /// Top read equals the truth.
    pub exact: bool,
    /// Edit distance between top read and truth.
    pub edits: usize,
    /// Recognition time, ms (decoding excluded).
    pub ms: f64,
}

/// Figures of one subset (or of all).
#[derive(Debug, Clone, Serialize)]
pub struct SubsetReport {
    /// Subset name (`overall` for all).
    pub name: String,
    /// Images.
    pub images: usize,
    /// Images whose plate was found.
    pub found: usize,
    /// Images whose plate was read exactly.
    pub exact: usize,
    /// Found, percent.
    pub found_pct: f64,
    /// Exact, percent.
    pub exact_pct: f64,
    /// Character error rate: edits / true characters.
    pub cer: f64,
    /// Median ms per image.
    pub median_ms: f64,
    /// 95th percentile ms per image.
    pub p95_ms: f64,
}

/// The result of [`evaluate_dir`]; `Display` prints a table.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The folder measured.
    pub dir: PathBuf,
    /// Settings used (`config.detector` and `config.reader` name the pipeline).
    pub config: RecognizerConfig,
    /// Bytes of the model files the pipeline loaded.
    pub model_bytes: u64,
    /// Per subset.
    pub subsets: Vec<SubsetReport>,
    /// All images.
    pub overall: SubsetReport,
    /// Per image.
    pub images: Vec<ImageResult>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Summarises image results.
pub fn summarize(name: &str, results: &[&ImageResult]) -> SubsetReport {
    let images = results.len();
    let found = results.iter().filter(|r| r.found).count();
    let exact = results.iter().filter(|r| r.exact).count();
    let edits: usize = results.iter().map(|r| r.edits).sum();
    let chars: usize = results.iter().map(|r| r.truth.chars().count()).sum();
    let mut ms: Vec<f64> = results.iter().map(|r| r.ms).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |n: usize| {
        if images == 0 {
            0.0
        } else {
            100.0 * n as f64 / images as f64
        }
    };
    SubsetReport {
        name: name.to_string(),
        images,
        found,
        exact,
        found_pct: pct(found),
        exact_pct: pct(exact),
        cer: if chars == 0 {
            0.0
        } else {
            edits as f64 / chars as f64
        },
        median_ms: percentile(&ms, 0.5),
        p95_ms: percentile(&ms, 0.95),
    }
}

/// Annotated images in one folder: (truth file, truth), sorted by name (the image is
/// `dir/truth.file`).
pub fn annotated_in(dir: &Path) -> Result<Vec<(PathBuf, Truth)>, RecognizerError> {
    let io = |source| RecognizerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_none_or(|e| e != "txt") || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| RecognizerError::Io {
            path: path.clone(),
            source,
        })?;
        let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
            continue;
        };
        let truth = parse_truth_line(line).map_err(|reason| RecognizerError::Truth {
            path: path.clone(),
            reason,
        })?;
        if dir.join(&truth.file).is_file() {
            out.push((path, truth));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Runs the recognizer on every annotated image under `dir` (`anpr-camera eval DIR`).
pub fn evaluate_dir(dir: &Path, config: &RecognizerConfig) -> Result<EvalReport, RecognizerError> {
    let io = |source| RecognizerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut folders: Vec<(String, PathBuf)> = vec![(".".to_string(), dir.to_path_buf())];
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        let name = sub
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        folders.push((name, sub));
    }
    let mut sets = Vec::new();
    for (name, folder) in folders {
        let items = annotated_in(&folder)?;
        if !items.is_empty() {
            sets.push((name, folder, items));
        }
    }
    if sets.is_empty() {
        return Err(RecognizerError::EmptyDataset {
            path: dir.to_path_buf(),
        });
    }
    // One pipeline for every folder, as on a camera (one set of models and compiled plans, so
    // its peak memory is a camera's); only the plate formats change between folders.
    let mut recognizer = Recognizer::new(config)?;
    let mut images = Vec::new();
    for (name, folder, items) in &sets {
        // A subfolder named after a region (us, eu, br) is measured as a camera set to that
        // region would see it, unless the configuration fixes the region.
        let region = name
            .parse::<PlateRegion>()
            .ok()
            .filter(|_| config.region == PlateRegion::Auto && config.region_from_folder)
            .unwrap_or(config.region);
        recognizer.tune(config.min_score, region);
        for (_, truth) in items {
            let img = open_image(&folder.join(&truth.file))?;
            let start = Instant::now();
            let reads = recognizer.recognize(&img)?;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let top = reads.first();
            let predicted = top.map(|r| r.text.clone()).unwrap_or_default();
            images.push(ImageResult {
                subset: name.clone(),
                file: truth.file.clone(),
                truth: truth.plate.clone(),
                confidence: top.map_or(0.0, |r| r.confidence),
                confirmed: top.is_some_and(|r| r.confirmed),
                found: top.is_some_and(|r| box_found(&r.bbox, &truth.bbox)),
                exact: predicted == truth.plate,
                edits: edit_distance(&predicted, &truth.plate),
                predicted,
                ms,
            });
        }
    }
    let subsets = sets
        .iter()
        .map(|(name, _, _)| {
            let rs: Vec<&ImageResult> = images.iter().filter(|r| &r.subset == name).collect();
            summarize(name, &rs)
        })
        .collect();
    let all: Vec<&ImageResult> = images.iter().collect();
    let overall = summarize("overall", &all);
    let model_bytes = config
        .model_files()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    Ok(EvalReport {
        dir: dir.to_path_buf(),
        config: config.clone(),
        model_bytes,
        subsets,
        overall,
        images,
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "eval of {} (detector {}, reader {}, models {:.1} MB, {} thread(s))",
            self.dir.display(),
            self.config.detector,
            self.config.reader,
            self.model_bytes as f64 / 1e6,
            self.config.threads
        )?;
        writeln!(
            f,
            "{:<10} {:>6} {:>8} {:>8} {:>7} {:>10} {:>8}",
            "subset", "images", "found%", "exact%", "CER", "median ms", "p95 ms"
        )?;
        for s in self.subsets.iter().chain(std::iter::once(&self.overall)) {
            writeln!(
                f,
                "{:<10} {:>6} {:>8.1} {:>8.1} {:>7.3} {:>10.1} {:>8.1}",
                s.name, s.images, s.found_pct, s.exact_pct, s.cer, s.median_ms, s.p95_ms
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tab_separated_truth_line_is_parsed() {
        let t = parse_truth_line("wts-lg-000194.jpg\t859\t8\t83\t41\t7CID930").expect("parsed");
        assert_eq!(t.file, "wts-lg-000194.jpg");
        assert_eq!(t.bbox, BBox::new(859.0, 8.0, 83.0, 41.0));
        assert_eq!(t.plate, "7CID930");
    }

    #[test]
    fn a_truth_line_with_missing_fields_is_an_error() {
        assert!(parse_truth_line("a.jpg\t1\t2\t3").is_err());
        assert!(parse_truth_line("a.jpg\tx\t2\t3\t4\tABC").is_err());
    }

    #[test]
    fn a_box_finds_the_plate_by_iou_or_by_holding_its_centre() {
        let truth = BBox::new(100.0, 100.0, 60.0, 30.0);
        assert!(box_found(&BBox::new(105.0, 102.0, 60.0, 30.0), &truth));
        // Only the characters: small IoU, but the centre is inside.
        assert!(box_found(&BBox::new(110.0, 108.0, 40.0, 14.0), &truth));
        assert!(!box_found(&BBox::new(300.0, 100.0, 60.0, 30.0), &truth));
    }

    #[test]
    fn the_summary_counts_found_exact_and_character_errors() {
        let r = |truth: &str, predicted: &str, found: bool, ms: f64| ImageResult {
            subset: "x".into(),
            file: "f".into(),
            truth: truth.into(),
            predicted: predicted.into(),
            confidence: 1.0,
            confirmed: false,
            found,
            exact: truth == predicted,
            edits: edit_distance(predicted, truth),
            ms,
        };
        let rs = [
            r("ABC1234", "ABC1234", true, 10.0),
            r("ABC1234", "A8C1234", true, 20.0),
            r("XYZ", "", false, 30.0),
        ];
        let refs: Vec<&ImageResult> = rs.iter().collect();
        let s = summarize("x", &refs);
        assert_eq!((s.images, s.found, s.exact), (3, 2, 1));
        assert!((s.cer - 4.0 / 17.0).abs() < 1e-9);
        assert_eq!(s.median_ms, 20.0);
        assert_eq!(s.p95_ms, 30.0);
    }
}
