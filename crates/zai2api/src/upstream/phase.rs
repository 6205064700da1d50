//! The phase-driven stream format (2026-09, protocol §19.1): which phase means what, as profile
//! data, and the reader that turns phase frames into semantic events.
//!
//! In this format there is no markup: `data.phase` says what a frame's text is. The table
//! ([`StreamProfile::phases`]) maps each phase name to a [`PhaseRole`], so the next phase upstream
//! invents is a profile edit (`[stream.phases] summary = "reasoning"`), not a release.
//!
//! Invariants of [`PhaseReader`]:
//! - Only an `end` phase (or the transcript's own end) finishes a reply; usage never does, and
//!   may arrive anywhere, even before the last answer characters.
//! - Reasoning runs are bracketed: `ThinkingStart` before the first text of a run and
//!   `ThinkingEnd` when anything else (answer, tool call) follows or the reply ends. Several runs
//!   alternating with tool calls each get their own bracket.
//! - A tool call is announced once (`ToolStart`, id and name from its first fragment), its
//!   argument pieces follow as they arrive (`ToolArgs`), and it is closed by exactly one `Tool`
//!   with the whole arguments when the next non-fragment frame, a new call, or the end arrives.
//! - Tool results (`tool_result`) and `bookkeeping` text never become answer text. A phase missing
//!   from the table takes [`StreamProfile::unknown_phase`] and is logged once per reply.
//! - Pure: no I/O, no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wire::FrameData;
use crate::semantic::{Semantic, ToolBlock, Usage};

/// What the text of a phase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseRole {
    /// The model's reasoning (`reasoning_content`, thinking blocks).
    Reasoning,
    /// The answer.
    Answer,
    /// A tool invocation in fragments (`delta_name`, `delta_arguments`).
    ToolCall,
    /// A tool's result text: never shown.
    ToolResult,
    /// Accounting and status frames (`usage`): their text, if any, is never shown.
    Bookkeeping,
    /// The reply is complete.
    End,
}

/// How several `usage` frames of one reply combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageFrames {
    /// Each frame counts one model call (a hop of an agent turn): the reply's usage is the sum.
    Sum,
    /// Each frame is a running total: the last one wins.
    Last,
}

/// The `[stream]` section of the upstream profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamProfile {
    /// Phase name → role, for frames without markup (protocol §19.1).
    pub phases: BTreeMap<String, PhaseRole>,
    /// Role of a phase the table does not name.
    pub unknown_phase: PhaseRole,
    /// How the `usage` frames of a phase-format reply combine. (§19.1 shows one frame per hop,
    /// each counting that hop alone; `last` is the other reading.) Markup-format replies repeat a
    /// running total, so there the last frame always wins.
    pub phase_usage: UsageFrames,
}

impl Default for StreamProfile {
    fn default() -> Self {
        let phases = [
            ("thinking", PhaseRole::Reasoning),
            ("answer", PhaseRole::Answer),
            ("tool_call", PhaseRole::ToolCall),
            ("tool_response", PhaseRole::ToolResult),
            ("other", PhaseRole::Bookkeeping),
            ("done", PhaseRole::End),
        ]
        .into_iter()
        .map(|(name, role)| (name.to_owned(), role))
        .collect();
        Self {
            phases,
            unknown_phase: PhaseRole::Bookkeeping,
            phase_usage: UsageFrames::Sum,
        }
    }
}

impl StreamProfile {
    /// The role of `phase`; `None` when the frame names no phase.
    pub fn role(&self, phase: Option<&str>) -> Option<PhaseRole> {
        let phase = phase?;
        Some(
            self.phases
                .get(phase)
                .copied()
                .unwrap_or(self.unknown_phase),
        )
    }

    /// Whether `phase` is in the table.
    pub fn knows(&self, phase: &str) -> bool {
        self.phases.contains_key(phase)
    }
}

/// The tool call being streamed.
#[derive(Debug)]
struct OpenCall {
    id: String,
    name: String,
    arguments: String,
}

/// Reads phase-format frames of one reply.
#[derive(Debug, Default)]
pub struct PhaseReader {
    thinking: bool,
    call: Option<OpenCall>,
    /// Unknown phases already logged.
    warned: Vec<String>,
}

impl PhaseReader {
    /// Reads one frame whose phase has `role`; `text` is its `delta_content`.
    pub fn push(
        &mut self,
        role: PhaseRole,
        phase: &str,
        data: &FrameData,
        text: Option<&str>,
        out: &mut impl Extend<Semantic>,
    ) {
        let text = text.filter(|t| !t.is_empty());
        match role {
            PhaseRole::Reasoning => {
                let Some(text) = text else { return };
                self.close_call(out);
                if !self.thinking {
                    self.thinking = true;
                    out.extend([Semantic::ThinkingStart]);
                }
                out.extend([Semantic::Reasoning(text.to_owned())]);
            }
            PhaseRole::Answer => {
                let Some(text) = text else { return };
                self.close_call(out);
                self.close_thinking(out);
                out.extend([Semantic::Answer(text.to_owned())]);
            }
            PhaseRole::ToolCall => self.tool_fragment(data, out),
            PhaseRole::ToolResult => {
                self.close_call(out);
                if text.is_some() {
                    tracing::trace!(tool = ?data.tool_name, "hiding an upstream tool result");
                }
            }
            PhaseRole::Bookkeeping => {
                if text.is_some() && !self.warned.iter().any(|p| p == phase) {
                    self.warned.push(phase.to_owned());
                    tracing::warn!(
                        phase,
                        "upstream sent text in a phase the profile treats as bookkeeping; it is \
                         hidden (map it in [stream.phases] to show it)"
                    );
                }
            }
            // The transcript ends the reply; nothing of ours is open beyond what `finish` closes.
            PhaseRole::End => {}
        }
    }

    /// Closes whatever is open at the end of the reply.
    pub fn finish(&mut self, out: &mut impl Extend<Semantic>) {
        self.close_call(out);
        self.close_thinking(out);
    }

    fn tool_fragment(&mut self, data: &FrameData, out: &mut impl Extend<Semantic>) {
        self.close_thinking(out);
        let id = data.tool_call_id();
        let starts = data.delta_name.is_some()
            || self.call.is_none()
            || id.is_some_and(|id| self.call.as_ref().is_some_and(|c| c.id != id));
        if starts {
            self.close_call(out);
            let call = OpenCall {
                id: id.unwrap_or_default().to_owned(),
                name: data.delta_name.clone().unwrap_or_default(),
                arguments: String::new(),
            };
            out.extend([Semantic::ToolStart {
                id: call.id.clone(),
                name: call.name.clone(),
            }]);
            self.call = Some(call);
        }
        if let (Some(piece), Some(call)) = (
            data.delta_arguments.as_deref().filter(|p| !p.is_empty()),
            self.call.as_mut(),
        ) {
            call.arguments.push_str(piece);
            out.extend([Semantic::ToolArgs(piece.to_owned())]);
        }
    }

    fn close_call(&mut self, out: &mut impl Extend<Semantic>) {
        if let Some(call) = self.call.take() {
            out.extend([Semantic::Tool(ToolBlock {
                id: call.id,
                name: call.name,
                arguments: if call.arguments.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    call.arguments
                },
            })]);
        }
    }

    fn close_thinking(&mut self, out: &mut impl Extend<Semantic>) {
        if self.thinking {
            self.thinking = false;
            out.extend([Semantic::ThinkingEnd {
                duration_secs: None,
            }]);
        }
    }
}

/// Adds one hop's usage to the reply's, saturating: the counts are upstream's numbers, and a sum
/// past u64 must not panic (found by fuzzing, fuzz/regressions/transcript/).
pub fn add_usage(total: Option<Usage>, hop: Usage) -> Usage {
    let Some(t) = total else { return hop };
    Usage {
        prompt_tokens: t.prompt_tokens.saturating_add(hop.prompt_tokens),
        completion_tokens: t.completion_tokens.saturating_add(hop.completion_tokens),
        total_tokens: t.total_tokens.saturating_add(hop.total_tokens),
        cached_tokens: match (t.cached_tokens, hop.cached_tokens) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_usage_sums_saturate() {
        let max = Usage {
            prompt_tokens: u64::MAX,
            completion_tokens: 1,
            total_tokens: u64::MAX,
            cached_tokens: Some(u64::MAX),
        };
        let sum = add_usage(Some(max), max);
        assert_eq!(
            (sum.prompt_tokens, sum.completion_tokens, sum.cached_tokens),
            (u64::MAX, 2, Some(u64::MAX))
        );
    }
}
