//! A small table of batch prices (50% of the standard price), in US dollars
//! per million tokens, for a cost estimate. A model that is not in the table
//! gets no estimate rather than a guess ("unknown").
//!
//! OpenAI's from <https://openai.com/api/pricing/>; Anthropic's Message
//! Batches are also billed at 50% of the standard price, from
//! <https://docs.anthropic.com/en/docs/about-claude/pricing> (base input and
//! output tokens only: prompt-cache reads and writes are priced apart and
//! are not in the estimate).

/// (model, input, output) per million tokens at batch prices.
const BATCH_PRICES: &[(&str, f64, f64)] = &[
    ("gpt-5", 0.625, 5.0),
    ("gpt-5-mini", 0.125, 1.0),
    ("gpt-5-nano", 0.025, 0.2),
    ("gpt-4.1", 1.0, 4.0),
    ("gpt-4.1-mini", 0.2, 0.8),
    ("gpt-4.1-nano", 0.05, 0.2),
    ("gpt-4o", 1.25, 5.0),
    ("gpt-4o-mini", 0.075, 0.3),
    ("o3", 1.0, 4.0),
    ("o3-mini", 0.55, 2.2),
    ("o4-mini", 0.55, 2.2),
    ("gpt-3.5-turbo", 0.25, 0.75),
    ("text-embedding-3-small", 0.01, 0.0),
    ("text-embedding-3-large", 0.065, 0.0),
    ("text-embedding-ada-002", 0.05, 0.0),
    // Anthropic, standard price halved.
    ("claude-opus-4-5", 2.5, 12.5),
    ("claude-opus-4-1", 7.5, 37.5),
    ("claude-opus-4-0", 7.5, 37.5),
    ("claude-opus-4", 7.5, 37.5),
    ("claude-sonnet-4-5", 1.5, 7.5),
    ("claude-sonnet-4-0", 1.5, 7.5),
    ("claude-sonnet-4", 1.5, 7.5),
    ("claude-3-7-sonnet", 1.5, 7.5),
    ("claude-haiku-4-5", 0.5, 2.5),
    ("claude-3-5-haiku", 0.4, 2.0),
    ("claude-3-haiku", 0.125, 0.625),
];

/// The model without a dated snapshot suffix (`gpt-4o-mini-2024-07-18` →
/// `gpt-4o-mini`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`) or
/// Anthropic's `-latest` alias suffix.
fn base_model(model: &str) -> &str {
    if let Some(head) = model.strip_suffix("-latest") {
        return head;
    }
    if let Some((head, tail)) = model.rsplit_once('-')
        && tail.len() == 8
        && tail.bytes().all(|b| b.is_ascii_digit())
    {
        return head;
    }
    let b = model.as_bytes();
    if b.len() > 11 {
        let (head, tail) = model.split_at(model.len() - 11);
        let t = tail.as_bytes();
        let dated = t[0] == b'-'
            && t[5] == b'-'
            && t[8] == b'-'
            && t[1..5]
                .iter()
                .chain(&t[6..8])
                .chain(&t[9..])
                .all(u8::is_ascii_digit);
        if dated {
            return head;
        }
    }
    model
}

/// The estimated cost in dollars of `input` and `output` tokens on `model`
/// at batch prices, if the model's prices are known for the job's service:
/// a Message Batches job (`anthropic`) prices only Claude models, any other
/// job only the others (a model name the service does not serve itself,
/// as the emulator allows, has no price there).
pub(crate) fn estimate(anthropic: bool, model: &str, input: u64, output: u64) -> Option<f64> {
    let m = base_model(model);
    if m.starts_with("claude-") != anthropic {
        return None;
    }
    let (_, i, o) = BATCH_PRICES.iter().find(|(name, _, _)| *name == m)?;
    #[allow(clippy::cast_precision_loss)]
    Some((input as f64 * i + output as f64 * o) / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models_and_snapshots_have_prices() {
        assert_eq!(
            estimate(false, "gpt-4o-mini", 1_000_000, 1_000_000),
            Some(0.375)
        );
        assert_eq!(
            estimate(false, "gpt-4o-mini-2024-07-18", 2_000_000, 0),
            Some(0.15)
        );
        assert_eq!(estimate(false, "gpt-4o", 1_000_000, 0), Some(1.25));
        assert_eq!(estimate(false, "my-finetune", 1, 1), None);
        assert_eq!(estimate(false, "gpt-4o-mini-emulated", 1, 1), None);
    }

    #[test]
    fn claude_models_have_half_the_standard_price() {
        // Sonnet 4.5: $3 in, $15 out per million at the standard price.
        assert_eq!(
            estimate(true, "claude-sonnet-4-5-20250929", 1_000_000, 1_000_000),
            Some(9.0)
        );
        assert_eq!(estimate(true, "claude-haiku-4-5", 2_000_000, 0), Some(1.0));
        assert_eq!(
            estimate(true, "claude-3-5-haiku-latest", 0, 1_000_000),
            Some(2.0)
        );
        assert_eq!(estimate(true, "claude-sonnet-4-5-emulated", 1, 1), None);
        assert_eq!(estimate(true, "claude-next", 1, 1), None);
    }

    #[test]
    fn a_model_of_the_other_service_has_no_price() {
        assert_eq!(estimate(true, "gpt-4o-mini", 1_000_000, 0), None);
        assert_eq!(estimate(false, "claude-haiku-4-5", 1_000_000, 0), None);
        assert_eq!(estimate(true, "claude-haiku-4-5", 2_000_000, 0), Some(1.0));
    }
}
