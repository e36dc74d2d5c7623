//! How a message's wire form becomes bytes and back: bincode (the
//! workspace's bincode 2, serde, standard configuration) or JSON, chosen per
//! bridge.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The encoding of the payloads a bridge publishes and reads. Both ends of
/// a subject must use the same one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// bincode 2 with serde, standard configuration: compact, not
    /// self-describing. The default.
    #[default]
    Bincode,
    /// JSON: larger and slower, readable with `nats sub`.
    Json,
}

impl Codec {
    /// The codec's name, as headers and errors show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Bincode => "bincode",
            Codec::Json => "json",
        }
    }

    pub(crate) fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let encoded = match self {
            Codec::Bincode => {
                bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
            }
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        };
        encoded.map_err(|text| CodecError {
            codec: self,
            direction: Direction::Encode,
            type_name: short_type::<T>(),
            text,
        })
    }

    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        let decoded = match self {
            Codec::Bincode => bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| e.to_string())
                .and_then(|(value, read)| {
                    if read == bytes.len() {
                        Ok(value)
                    } else {
                        Err(format!("{} bytes left over after the value", bytes.len() - read))
                    }
                }),
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        };
        decoded.map_err(|text| CodecError {
            codec: self,
            direction: Direction::Decode,
            type_name: short_type::<T>(),
            text,
        })
    }
}

fn short_type<T>() -> &'static str {
    std::any::type_name::<T>()
}

/// Whether a [`CodecError`] happened encoding or decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Turning a value into bytes.
    Encode,
    /// Reading a value from bytes.
    Decode,
}

/// A value that could not be encoded, or bytes that are not a value of the
/// expected type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    codec: Codec,
    direction: Direction,
    type_name: &'static str,
    text: String,
}

impl CodecError {
    /// The codec that failed.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encoding or decoding.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The Rust type that was encoded or expected.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The codec's own description of the failure.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.direction {
            Direction::Encode => "encode",
            Direction::Decode => "decode",
        };
        write!(f, "cannot {verb} a {} with {}: {}", self.type_name, self.codec.as_str(), self.text)
    }
}

impl std::error::Error for CodecError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    enum Wire {
        Item(u64),
        Name(String),
    }

    #[test]
    fn both_codecs_round_trip_a_value() {
        for codec in [Codec::Bincode, Codec::Json] {
            let bytes = codec.encode(&Wire::Name("x".into())).unwrap();
            assert_eq!(codec.decode::<Wire>(&bytes).unwrap(), Wire::Name("x".into()));
        }
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_codec_and_type() {
        for codec in [Codec::Bincode, Codec::Json] {
            let error = codec.decode::<Wire>(b"\xff\xff\xffnot a message").unwrap_err();
            assert_eq!(error.codec(), codec);
            assert_eq!(error.direction(), Direction::Decode);
            assert!(error.type_name().ends_with("Wire"), "{}", error.type_name());
            assert!(error.to_string().starts_with("cannot decode a "), "{error}");
        }
    }

    #[test]
    fn trailing_bytes_are_not_a_message() {
        let mut bytes = Codec::Bincode.encode(&Wire::Item(3)).unwrap();
        bytes.push(0);
        assert!(Codec::Bincode.decode::<Wire>(&bytes).is_err());
    }
}
