//! Simulated cameras: the real `anpr-camera` agent (`anpr_camera::agent::Agent`),
//! one per camera id, each with its own certificate, state folder and configuration file
//! (written under the data folder, as a camera's TOML), over a shared media folder of
//! generated samples. Plate reads come from a simulated detector appending to the agent's
//! real outbox (the recognizer and a frame source are separate issues).
//!
//! The media folder, generated on first run (no external tools):
//! - `clips/drive-by.png`: an animated PNG (APNG, uncompressed, 30 frames of 640×360 at
//!   10 fps, ~20.7 MB) of a car driving past: large enough to show multipart upload progress,
//!   and playable in every current browser (as an image);
//! - `images/plate.jpg`: a synthetic plate photo (the recognizer's test fixture).

use anpr_camera::Config;
use anpr_camera::agent::Shutdown;
use anpr_camera::config::{
    CredentialsSection, MIN_PART_SIZE, MqttSection, OutboxSection, RecognizerSection, UploadSection,
};
use anpr_camera::outbox::{Outbox, OutboxConfig};
use anpr_protocol::{CameraId, FileName, PlateRead};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Path of the sample clip inside the media folder.
pub const CLIP: &str = "clips/drive-by.png";
/// Path of the sample image inside the media folder.
pub const IMAGE: &str = "images/plate.jpg";
const PLATE_JPG: &[u8] =
    include_bytes!("../../../camera/recognizer/tests/fixtures/synthetic_plate.jpg");

/// Frames of the sample clip.
pub const CLIP_FRAMES: u32 = 30;
const W: u32 = 640;
const H: u32 = 360;

/// A media or camera file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CameraSetupError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding the clip failed.
    #[error("encoding the sample clip: {0}")]
    Png(#[from] png::EncodingError),
    /// The generated agent configuration was refused.
    #[error("agent configuration: {0}")]
    Config(#[from] anpr_camera::config::ConfigError),
    /// The agent configuration could not be written as TOML.
    #[error("agent configuration: {0}")]
    ConfigText(#[from] toml::ser::Error),

    /// The certificate could not be issued.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The outbox could not be opened.
    #[error("outbox: {0}")]
    Outbox(#[from] anpr_camera::outbox::OutboxError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CameraSetupError + '_ {
    move |source| CameraSetupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One frame of the clip: sky, road, and a car with a plate at position `i`.
fn frame(i: u32) -> Vec<u8> {
    let mut px = vec![0u8; (W * H * 3) as usize];
    let car_x = (i * (W + 200) / CLIP_FRAMES) as i64 - 200;
    for y in 0..H {
        for x in 0..W {
            let o = ((y * W + x) * 3) as usize;
            let (xi, yi) = (x as i64, y as i64);
            let mut c = if y < H / 2 {
                [110, (150 + y / 4) as u8, 220]
            } else {
                [70, 70, 75]
            };
            if y > H * 3 / 4 - 3 && y < H * 3 / 4 + 3 && (x / 40) % 2 == 0 {
                c = [230, 230, 230];
            }
            if (car_x..car_x + 200).contains(&xi) && (150..260).contains(&yi) {
                c = [180, 30, 40];
                if (car_x + 60..car_x + 140).contains(&xi) && (225..250).contains(&yi) {
                    c = [245, 245, 245];
                    if (xi - car_x - 66) % 9 < 5 && (229..246).contains(&yi) {
                        c = [15, 15, 15];
                    }
                }
            }
            if y >= H - 6 && x < W * (i + 1) / CLIP_FRAMES {
                c = [250, 200, 40];
            }
            px[o..o + 3].copy_from_slice(&c);
        }
    }
    px
}

/// Writes the sample media into `media` if missing.
pub fn ensure_media(media: &Path) -> Result<(), CameraSetupError> {
    let clip = media.join(CLIP);
    let image = media.join(IMAGE);
    for dir in [clip.parent(), image.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    if !image.exists() {
        std::fs::write(&image, PLATE_JPG).map_err(io(&image))?;
    }
    if !clip.exists() {
        let tmp = clip.with_extension("png.part");
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W, H);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // Stored, not deflated: the file is meant to be big (an upload worth watching) and
        // is written in well under a second.
        enc.set_compression(png::Compression::NoCompression);
        enc.set_animated(CLIP_FRAMES, 0)?;
        enc.set_frame_delay(1, 10)?;
        let mut w = enc.write_header()?;
        for i in 0..CLIP_FRAMES {
            w.write_image_data(&frame(i))?;
        }
        w.finish()?;
        std::fs::rename(&tmp, &clip).map_err(io(&clip))?;
    }
    Ok(())
}

/// Where a simulated camera reaches the local stand-ins.
#[derive(Debug, Clone)]
pub struct CameraEnv {
    /// MQTT 5 over TLS port.
    pub mqtt_port: u16,
    /// S3 endpoint URL.
    pub s3_endpoint: String,
    /// Media bucket.
    pub bucket: String,
    /// Credentials provider port.
    pub creds_port: u16,
    /// Role alias.
    pub role_alias: String,
    /// Shared media folder.
    pub media: PathBuf,
    /// Seconds between simulated plate reads or frames (0: none).
    pub plate_interval_secs: u64,
    /// The recognizer's models: frames are fed to the real recognizer (feature `recognizer`).
    pub models_dir: Option<PathBuf>,
}

/// Writes the camera's configuration file (a camera's real TOML, built with
/// [`Config::builder`]) and loads it, as an installed camera's agent would.
pub fn agent_config(
    camera: &CameraId,
    dir: &Path,
    pki: &crate::pki::Pki,
    env: &CameraEnv,
) -> Result<Config, CameraSetupError> {
    let id = pki.camera(camera.as_str())?;
    let (cert, key) = (id.cert_path, id.key_path);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).map_err(io(&state))?;
    let recognizer = env
        .models_dir
        .as_ref()
        .filter(|_| cfg!(feature = "recognizer"))
        .map(|models| RecognizerSection {
            models_dir: Some(models.clone()),
            threads: 1,
            // The simulated camera drops the same photo again and again: nothing moves in it,
            // and each frame is to be read.
            motion: 0.0,
            ..RecognizerSection::new(dir.join("frames"))
        });
    let cfg = Config::builder(camera.clone(), &env.media, &state)
        .mqtt(MqttSection {
            port: env.mqtt_port,
            keep_alive_secs: 30,
            reconnect_max_secs: 5,
            boot_jitter_secs: 0,
            plate_topic: Some(format!("{camera}/plates")),
            ..MqttSection::new("localhost", pki.ca_path(), cert, key)
        })
        .upload(UploadSection {
            endpoint_url: Some(env.s3_endpoint.clone()),
            force_path_style: true,
            multipart_threshold_bytes: MIN_PART_SIZE,
            part_size_bytes: MIN_PART_SIZE,
            progress_step_pct: 10,
            retry_initial_secs: 1,
            retry_max_secs: 5,
            ..UploadSection::new(&env.bucket, "us-east-1")
        })
        .outbox(OutboxSection {
            batch_max_age_secs: 1,
            drain_start_max_secs: 0,
            ..OutboxSection::default()
        })
        .credentials(CredentialsSection {
            port: env.creds_port,
            ..CredentialsSection::new("localhost", &env.role_alias)
        })
        .recognizer(recognizer)
        .build()?;
    let text = format!(
        "# Written by anpr-local for the simulated camera {camera}.\n{}",
        cfg.to_toml()?
    );
    let path = dir.join("camera.toml");
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(Config::load(&path)?)
}

/// Starts a simulated camera: the agent and its simulated detector, until `shutdown`.
pub fn spawn(
    cfg: Config,
    plate_interval_secs: u64,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, CameraSetupError> {
    let outbox = Outbox::open(
        &cfg.state_dir.join("outbox"),
        OutboxConfig {
            // Reads reach the console within about a second (the `[outbox]` setting above,
            // which the agent applies as it starts).
            batch_max_age_ms: 1000,
            ..OutboxConfig::default()
        },
    )?;
    let outbox = Arc::new(Mutex::new(outbox));
    let camera = cfg.camera();
    #[cfg(feature = "recognizer")]
    if cfg.recognizer.is_some() {
        return Ok(spawn_with_recognizer(
            cfg,
            outbox,
            plate_interval_secs,
            shutdown,
        ));
    }
    if plate_interval_secs > 0 {
        let (outbox, mut stop) = (outbox.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(plate_interval_secs));
            let mut n: usize = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let read = simulated_read(n);
                n = n.wrapping_add(1);
                if let Ok(mut ob) = outbox.lock()
                    && let Err(e) = ob.append(read)
                {
                    tracing::warn!(error = %e, "simulated read not stored in the outbox");
                }
            }
        });
    }
    Ok(tokio::spawn(async move {
        let agent = anpr_camera::agent::Agent::builder(cfg).outbox(outbox);
        if let Err(e) = agent.run(Shutdown::new(shutdown)).await {
            tracing::error!(camera = %camera, error = %e, "simulated camera could not start");
        }
    }))
}

/// The agent with the real frame feed: the sample plate photo is dropped into the watched
/// folder every `interval_secs` as a new frame (written aside, then renamed, as a camera's
/// capture would appear), and the recognizer's reads go through the agent's outbox.
#[cfg(feature = "recognizer")]
fn spawn_with_recognizer(
    cfg: Config,
    outbox: anpr_camera::agent::OutboxHandle,
    interval_secs: u64,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let camera = cfg.camera();
    let (running_tx, running_rx) = watch::channel(cfg.clone());
    let feed = match anpr_frames::spawn_with_settings(
        &cfg,
        outbox.clone(),
        shutdown.clone(),
        running_rx,
    ) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(camera = %camera, error = %e, "frame feed not started");
            None
        }
    };
    if let (Some(section), true) = (cfg.recognizer.clone(), interval_secs > 0) {
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(interval_secs));
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                n += 1;
                let tmp = section.watch_dir.join(format!(".frame-{n:08}.part"));
                let frame = section.watch_dir.join(format!("frame-{n:08}.jpg"));
                if let Err(e) =
                    std::fs::write(&tmp, PLATE_JPG).and_then(|()| std::fs::rename(&tmp, &frame))
                {
                    tracing::warn!(error = %e, "frame not written");
                }
            }
        });
    }
    tokio::spawn(async move {
        let agent = anpr_camera::agent::Agent::builder(cfg)
            .outbox(outbox)
            .settings(running_tx);
        if let Err(e) = agent.run(Shutdown::new(shutdown)).await {
            tracing::error!(camera = %camera, error = %e, "simulated camera could not start");
        }
        if let Some(feed) = feed {
            let _ = tokio::task::spawn_blocking(move || feed.join()).await;
        }
    })
}

/// Plates the simulated detector cycles through.
pub const PLATES: [&str; 6] = [
    "AB12 CDE",
    "GF-456-HK",
    "KL 789 MN",
    "XY21 ZZA",
    "AB12CDE",
    "MK 33 PQR",
];

fn simulated_read(n: usize) -> PlateRead {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    PlateRead {
        id: anpr_camera::outbox::new_read_id(),
        t,
        p: PLATES[n % PLATES.len()].to_owned(),
        c: 80 + (n % 19) as u8,
        img: FileName::parse(IMAGE).ok(),
        bb: Some([212, 138, 180, 46]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_clip_is_an_animated_png_of_about_twenty_megabytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        ensure_media(dir.path()).expect("media");
        let bytes = std::fs::read(dir.path().join(CLIP)).expect("clip");
        assert!(
            bytes.len() > 20_000_000 && bytes.len() < 22_000_000,
            "{}",
            bytes.len()
        );
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().expect("png header");
        let anim = reader.info().animation_control().expect("APNG acTL chunk");
        assert_eq!(anim.num_frames, CLIP_FRAMES);
    }
}
