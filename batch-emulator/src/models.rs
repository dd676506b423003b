//! The models the emulator knows, with the dated snapshot each name runs as.
//!
//! The live API answers with the snapshot a name resolves to: a batch of
//! `gpt-4o-mini` requests reports `"model": "gpt-4o-mini-2024-07-18"`, and so
//! do its response bodies. Names here are taken from OpenAI's public model
//! pages (<https://platform.openai.com/docs/models>); a name that has no
//! dated snapshot (the embedding models, `gpt-image-1`) resolves to itself.
//! A batch naming a model outside this table fails validation with
//! `model_not_found`, unless the emulator was started to accept any model.

/// Each known alias and the dated snapshot it resolves to. A snapshot name
/// is known too, and resolves to itself.
const MODELS: &[(&str, &str)] = &[
    // Chat, responses.
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("gpt-4o", "gpt-4o-2024-08-06"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
    ("gpt-4o-2024-11-20", "gpt-4o-2024-11-20"),
    ("gpt-4.1", "gpt-4.1-2025-04-14"),
    ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"),
    ("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"),
    ("gpt-4-turbo", "gpt-4-turbo-2024-04-09"),
    ("gpt-3.5-turbo", "gpt-3.5-turbo-0125"),
    ("gpt-5", "gpt-5-2025-08-07"),
    ("gpt-5-mini", "gpt-5-mini-2025-08-07"),
    ("gpt-5-nano", "gpt-5-nano-2025-08-07"),
    ("o1", "o1-2024-12-17"),
    ("o3", "o3-2025-04-16"),
    ("o3-mini", "o3-mini-2025-01-31"),
    ("o4-mini", "o4-mini-2025-04-16"),
    // Completions.
    ("gpt-3.5-turbo-instruct", "gpt-3.5-turbo-instruct"),
    ("davinci-002", "davinci-002"),
    ("babbage-002", "babbage-002"),
    // Embeddings.
    ("text-embedding-3-small", "text-embedding-3-small"),
    ("text-embedding-3-large", "text-embedding-3-large"),
    ("text-embedding-ada-002", "text-embedding-ada-002"),
    // Moderations.
    ("omni-moderation-latest", "omni-moderation-2024-09-26"),
    // Images, videos.
    ("gpt-image-1", "gpt-image-1"),
    ("dall-e-2", "dall-e-2"),
    ("dall-e-3", "dall-e-3"),
    ("sora-2", "sora-2"),
    ("sora-2-pro", "sora-2-pro"),
];

/// The dated snapshot `model` runs as, if the emulator knows the name (an
/// alias or a snapshot).
pub(crate) fn snapshot(model: &str) -> Option<&'static str> {
    MODELS
        .iter()
        .find(|(alias, snap)| *alias == model || *snap == model)
        .map(|(_, snap)| *snap)
}

/// The name a response carries for `model`: its snapshot when known, else
/// the name as sent.
pub(crate) fn reported(model: &str) -> &str {
    snapshot(model).unwrap_or(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_snapshots_and_snapshots_to_themselves() {
        assert_eq!(snapshot("gpt-4o-mini"), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(
            snapshot("gpt-4o-mini-2024-07-18"),
            Some("gpt-4o-mini-2024-07-18")
        );
        assert_eq!(snapshot("gpt-5-mini"), Some("gpt-5-mini-2025-08-07"));
        assert_eq!(
            snapshot("text-embedding-3-small"),
            Some("text-embedding-3-small")
        );
        assert_eq!(snapshot("gpt-4o-mini-typo"), None);
        assert_eq!(snapshot(""), None);
        assert_eq!(reported("no-such-model"), "no-such-model");
        assert_eq!(reported("gpt-4o"), "gpt-4o-2024-08-06");
    }
}
