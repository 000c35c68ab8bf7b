//! Logging of the Lambda functions: one setup shared by every entry point.

/// Installs JSON logs for CloudWatch (no timestamps: Lambda adds them), filtered by `RUST_LOG`,
/// `info` by default. Call once, first thing in `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}
