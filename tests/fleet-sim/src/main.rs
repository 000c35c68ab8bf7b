//! `anpr-fleet-sim`: see the crate docs and docs/capacity.md for the measurement commands.

use anpr_fleet_sim::profile::Profile;
use anpr_fleet_sim::run::{Options, run, table};
use clap::Parser;
use std::time::Duration;

/// N simulated cameras against the Mosquitto stand-in of AWS IoT Core.
#[derive(Debug, Parser)]
struct Args {
    /// Simulated cameras (one MQTT session and certificate each).
    #[arg(long, default_value_t = 100)]
    cameras: usize,
    /// What each camera does.
    #[arg(long, value_enum, default_value_t = Profile::Busy)]
    profile: Profile,
    /// Simulated seconds per wall-clock second (a day in 86.4 s at 1000).
    #[arg(long, default_value_t = 100.0)]
    compress: f64,
    /// Seconds of traffic once every camera is connected.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// CONNECTs per second admitted (the account quota scaled to the fleet; 0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    connect_rate: f64,
    /// Bytes of each uploaded file.
    #[arg(long, default_value_t = 16 * 1024)]
    file_bytes: usize,
    /// File requests per second for the whole fleet instead of the profile's rate (more
    /// latency samples in a short run; reads keep the profile's rate).
    #[arg(long)]
    requests_per_sec: Option<f64>,
    /// Only the first this many cameras make plate reads (the rest hold a session and take
    /// file requests): each reading camera needs two more open files.
    #[arg(long)]
    reading_cameras: Option<usize>,
    /// After the traffic phase, stop the broker for this many seconds and restart it.
    #[arg(long)]
    storm_down_secs: Option<u64>,
    /// File requests created (to random cameras) while the broker is down, besides the
    /// profile's.
    #[arg(long, default_value_t = 0)]
    storm_requests: usize,
    /// Seconds between progress lines on stderr.
    #[arg(long, default_value_t = 5)]
    progress_secs: u64,
    /// Give up waiting for sessions or the drain after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anpr_test_support::init_crypto();
    let o = Options {
        cameras: a.cameras,
        profile: a.profile,
        compress: a.compress,
        duration: Duration::from_secs(a.duration_secs),
        connect_rate: a.connect_rate,
        file_bytes: a.file_bytes,
        requests_per_sec: a.requests_per_sec,
        reading_cameras: a.reading_cameras,
        storm_down: a.storm_down_secs.map(Duration::from_secs),
        storm_requests: a.storm_requests,
        progress: Duration::from_secs(a.progress_secs.max(1)),
        timeout: Duration::from_secs(a.timeout_secs),
    };
    let s = run(&o).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("{}", table(&s));
    }
    Ok(())
}
