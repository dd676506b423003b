//! The endpoints a batch can target (API notes §4, `CreateBatchRequest.endpoint`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An endpoint the Batch API accepts, as written in a batch's `endpoint` and
/// in each request line's `url` (with the `/v1` prefix).
///
/// The set has grown over time (4 values in 2025, 8 now), so any other string
/// is kept as [`Endpoint::Unknown`] rather than rejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/v1/responses`
    Responses,
    /// `/v1/chat/completions`
    ChatCompletions,
    /// `/v1/embeddings`
    Embeddings,
    /// `/v1/completions`
    Completions,
    /// `/v1/moderations`
    Moderations,
    /// `/v1/images/generations`
    ImagesGenerations,
    /// `/v1/images/edits`
    ImagesEdits,
    /// `/v1/videos`
    Videos,
    /// Any other value, kept as sent.
    Unknown(String),
}

impl Endpoint {
    /// Every endpoint the spec lists, in the spec's order.
    pub const KNOWN: [Endpoint; 8] = [
        Endpoint::Responses,
        Endpoint::ChatCompletions,
        Endpoint::Embeddings,
        Endpoint::Completions,
        Endpoint::Moderations,
        Endpoint::ImagesGenerations,
        Endpoint::ImagesEdits,
        Endpoint::Videos,
    ];

    /// The wire string, e.g. `/v1/chat/completions`.
    pub fn as_str(&self) -> &str {
        match self {
            Endpoint::Responses => "/v1/responses",
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Moderations => "/v1/moderations",
            Endpoint::ImagesGenerations => "/v1/images/generations",
            Endpoint::ImagesEdits => "/v1/images/edits",
            Endpoint::Videos => "/v1/videos",
            Endpoint::Unknown(s) => s,
        }
    }

    /// Parses a wire string. Never fails: unknown values become [`Endpoint::Unknown`].
    pub fn parse(s: &str) -> Endpoint {
        Endpoint::KNOWN
            .into_iter()
            .find(|e| e.as_str() == s)
            .unwrap_or_else(|| Endpoint::Unknown(s.to_owned()))
    }

    /// Whether this is one of the spec's known endpoints.
    pub fn is_known(&self) -> bool {
        !matches!(self, Endpoint::Unknown(_))
    }

    /// Whether request bodies for this endpoint name a `model`.
    pub fn takes_model(&self) -> bool {
        !matches!(self, Endpoint::Videos | Endpoint::Unknown(_))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Endpoint::parse(s))
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Endpoint::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_unknown() {
        for e in Endpoint::KNOWN {
            assert_eq!(Endpoint::parse(e.as_str()), e);
            let json = serde_json::to_string(&e).expect("serialize");
            assert_eq!(serde_json::from_str::<Endpoint>(&json).expect("parse"), e);
        }
        let odd = Endpoint::parse("/v1/audio/speech");
        assert_eq!(odd, Endpoint::Unknown("/v1/audio/speech".into()));
        assert_eq!(odd.to_string(), "/v1/audio/speech");
    }
}
