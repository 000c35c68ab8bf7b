//! The recognizer's vocabulary, defined once for everyone who names it: the camera's
//! configuration file (`[recognizer]` `region`, `detector` and `reader`), the remote configuration
//! ([`crate::RemoteConfig::recognizer_region`]) and the recognizer itself (`anpr-recognizer`
//! uses these types), so that the agent can read and check its settings without linking the
//! recognizer.
//!
//! Each is written as its lowercase name (serde, [`std::str::FromStr`] and
//! [`std::fmt::Display`] agree); parsing ignores case.

use serde::{Deserialize, Serialize};

/// Which plate formats the recognizer expects (where the camera is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateRegion {
    /// Any format.
    #[default]
    Auto,
    /// United States.
    Us,
    /// European Union and neighbours.
    Eu,
    /// Brazil (Mercosur and older).
    Br,
}

impl PlateRegion {
    /// Every region.
    pub const ALL: [PlateRegion; 4] = [Self::Auto, Self::Us, Self::Eu, Self::Br];

    /// The name used in settings, on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Us => "us",
            Self::Eu => "eu",
            Self::Br => "br",
        }
    }
}

/// Which reader reads the plate candidates the detector finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReaderKind {
    /// PP-OCRv4 mobile recognition, a general text reader decoded over plate characters.
    #[default]
    Ppocr,
    /// Our own plate-only reader (36 characters, CTC), trained on rendered plates.
    Plate,
}

impl ReaderKind {
    /// Every reader, in the order `anpr-camera eval --reader all` measures them.
    pub const ALL: [ReaderKind; 2] = [Self::Ppocr, Self::Plate];

    /// The name used in settings and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ppocr => "ppocr",
            Self::Plate => "plate",
        }
    }
}

/// Which detector finds the plate candidates in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// PP-OCRv4 mobile text detection: every line of text, plates among them.
    Ppocr,
    /// Our own plate detector (plates' characters only), trained on composed frames: the
    /// default, one look at a frame in under 100 ms on one core (docs/recognizer.md).
    #[default]
    Plate,
}

impl DetectorKind {
    /// Every detector, in the order `anpr-camera eval --detector all` measures them.
    pub const ALL: [DetectorKind; 2] = [Self::Ppocr, Self::Plate];

    /// The name used in settings and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ppocr => "ppocr",
            Self::Plate => "plate",
        }
    }
}

/// The one of `all` whose `name` is `s` (case ignored); else an error naming `what` was asked
/// for and listing the names accepted.
fn by_name<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|t| name(*t).eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let names = all.iter().map(|t| name(*t)).collect::<Vec<_>>().join(", ");
            format!("unknown {what} {s:?} ({names})")
        })
}

impl std::str::FromStr for PlateRegion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(s, &Self::ALL, Self::as_str, "region")
    }
}

impl std::str::FromStr for ReaderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(s, &Self::ALL, Self::name, "reader")
    }
}

impl std::str::FromStr for DetectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(s, &Self::ALL, Self::name, "detector")
    }
}

impl std::fmt::Display for PlateRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ReaderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name a setting is written with is the one serde, `FromStr` and `Display` use.
    #[test]
    fn every_name_reads_back_the_same_way_everywhere() {
        for r in PlateRegion::ALL {
            assert_eq!(r.as_str().parse::<PlateRegion>(), Ok(r));
            assert_eq!(r.as_str().to_uppercase().parse::<PlateRegion>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<PlateRegion>(&json).unwrap(), r);
        }
        for k in ReaderKind::ALL {
            assert_eq!(k.name().parse::<ReaderKind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<ReaderKind>(&json).unwrap(), k);
        }
        for k in DetectorKind::ALL {
            assert_eq!(k.name().to_uppercase().parse::<DetectorKind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<DetectorKind>(&json).unwrap(), k);
        }
    }

    #[test]
    fn an_unknown_name_is_refused_listing_the_known_ones() {
        let e = "mars".parse::<PlateRegion>().unwrap_err();
        assert_eq!(e, "unknown region \"mars\" (auto, us, eu, br)");
        let e = "tesseract".parse::<ReaderKind>().unwrap_err();
        assert_eq!(e, "unknown reader \"tesseract\" (ppocr, plate)");
        assert_eq!(PlateRegion::default(), PlateRegion::Auto);
        assert_eq!(ReaderKind::default(), ReaderKind::Ppocr);
        let e = "yolo".parse::<DetectorKind>().unwrap_err();
        assert_eq!(e, "unknown detector \"yolo\" (ppocr, plate)");
        assert_eq!(DetectorKind::default(), DetectorKind::Plate);
    }
}
