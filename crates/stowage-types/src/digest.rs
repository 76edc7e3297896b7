use std::fmt;
use std::str::FromStr;

use crate::NameError;

/// A 32-byte SHA-256 digest: the name of a chunk, or an index checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub const LEN: usize = 32;

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The chunk-store directory prefix: the first four hex digits.
    pub fn prefix(&self) -> String {
        hex::encode(&self.0[..2])
    }

    /// Takes 32 bytes from a slice; `None` if it is shorter.
    pub fn from_slice(bytes: &[u8]) -> Option<Digest> {
        let arr: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        Some(Digest(arr))
    }
}

impl FromStr for Digest {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(NameError::Digest(s.to_string()));
        }
        Ok(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let text = "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8";
        let d: Digest = text.parse().unwrap();
        assert_eq!(d.to_hex(), text);
        assert_eq!(d.prefix(), "bb9f");
        assert!("xyz".parse::<Digest>().is_err());
        assert!(text[..62].parse::<Digest>().is_err());
    }
}
