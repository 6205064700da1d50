//! `ANTHROPIC_MODEL_MAP`: which GLM model serves a Claude model name. Parsed once at start-up
//! (a bad entry stops the gateway with one line naming the variable); looked up per request.
//!
//! Invariants: rules keep their order and the first match wins; patterns are lower-cased once at
//! parse time, so a lookup is a case-insensitive glob match without allocating per rule.

/// An ordered list of `pattern=model` rules, where `*` in a pattern matches any run of characters
/// (including none) and matching ignores ASCII case. The first rule that matches wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMap {
    /// (pattern, model), patterns lower-cased once here so lookups need not.
    rules: Vec<(String, String)>,
}

impl ModelMap {
    /// Parses `pattern=model` pairs separated by commas or newlines; blank entries are skipped.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for entry in raw.split([',', '\n', '\r']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let Some((pattern, model)) = entry.split_once('=') else {
                return Err(format!("entry `{entry}` is not `pattern=model`"));
            };
            let (pattern, model) = (pattern.trim(), model.trim());
            if pattern.is_empty() || model.is_empty() {
                return Err(format!("entry `{entry}` needs both a pattern and a model"));
            }
            if model.contains('*') {
                return Err(format!("entry `{entry}`: the model must be a plain name"));
            }
            rules.push((pattern.to_ascii_lowercase(), model.to_owned()));
        }
        Ok(Self { rules })
    }

    /// The model of the first rule whose pattern matches `name`.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        let name = name.trim().to_ascii_lowercase();
        self.rules
            .iter()
            .find(|(pattern, _)| crate::text::glob_match(pattern, &name))
            .map(|(_, model)| model.as_str())
    }
}
