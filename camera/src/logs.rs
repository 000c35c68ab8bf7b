//! Structured logs for the camera's binaries (tracing): the levels `RUST_LOG` names,
//! `ANPR_LOG_FORMAT=json` for JSON lines.

/// Where the log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// Standard output (the agent).
    Stdout,
    /// Standard error (the frame feed, whose stdout is its link to the agent).
    Stderr,
}

/// Logs at the levels `RUST_LOG` names (`info`, `anpr_camera=debug,rumqttc=warn`: targets and
/// levels, without span or field filters, which would link a regex engine), else `info`.
pub fn init(to: LogTo) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::level_filters::LevelFilter::INFO)
        });
    let registry = tracing_subscriber::registry().with(filter);
    let json = std::env::var("ANPR_LOG_FORMAT").as_deref() == Ok("json");
    let writer = move || -> Box<dyn std::io::Write> {
        match to {
            LogTo::Stdout => Box::new(std::io::stdout()),
            LogTo::Stderr => Box::new(std::io::stderr()),
        }
    };
    if json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(writer))
            .init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer),
            )
            .init();
    }
}
