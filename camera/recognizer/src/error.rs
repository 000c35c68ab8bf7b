//! The library's error type.

use std::path::PathBuf;

/// Boxed source error (tract reports `anyhow`-style errors, kept here as the source).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the recognizer.
#[derive(Debug, thiserror::Error)]
pub enum RecognizerError {
    /// A model file is not there: the models come from `scripts/fetch-models`.
    #[error(
        "model file {} is missing: run scripts/fetch-models (called by scripts/setup) or set ANPR_MODELS_DIR",
        path.display()
    )]
    ModelMissing {
        /// The expected path.
        path: PathBuf,
    },
    /// A model file exists but could not be loaded or compiled for the given input shape.
    #[error("cannot load model {}", path.display())]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// What tract said.
        #[source]
        source: BoxError,
    },
    /// Inference failed while running a model.
    #[error("inference failed in the {stage} stage")]
    Inference {
        /// `detect` or `read`.
        stage: &'static str,
        /// What tract said.
        #[source]
        source: BoxError,
    },
    /// The character list of the reader is unusable.
    #[error("bad character list {}: {reason}", path.display())]
    Charset {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An image could not be opened or decoded.
    #[error("cannot read image {}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A ground-truth `.txt` file does not follow `filename x y w h PLATE`.
    #[error("bad ground-truth file {}: {reason}", path.display())]
    Truth {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A directory given to the evaluation holds no annotated image.
    #[error("no annotated image (NAME.jpg + NAME.txt) under {}", path.display())]
    EmptyDataset {
        /// The directory.
        path: PathBuf,
    },
}
