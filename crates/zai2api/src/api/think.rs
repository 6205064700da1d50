//! The four THINK_TAGS_MODE renderings of reasoning for OpenAI-style clients (ARCHITECTURE §4).
//!
//! With R a block's reasoning, N its duration and A the answer:
//! - `reasoning`: `reasoning_content` = R, `content` = A
//! - `think`:     `content` = `<think>\n\n` R `\n\n</think>\n\n` A
//! - `strip`:     `content` = R with every line quoted `> `, then `\n\n` A
//! - `details`:   `content` = `<details type="reasoning" open><div>\n\n` R
//!   `\n\n</div><summary>Thought for N seconds</summary></details>\n\n` A
//!
//! Invariants: output is produced as events arrive (a block's opening is deferred only until its
//! first reasoning text, so an empty block renders as nothing); constant work per event apart from
//! the text itself; runs of answer text interrupted by tool activity or another reasoning block are
//! joined by exactly one blank line, and reasoning blocks in `reasoning_content` likewise.

use std::fmt;

use crate::semantic::Semantic;

/// How reasoning reaches OpenAI clients (THINK_TAGS_MODE; ARCHITECTURE §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ThinkMode {
    #[default]
    Reasoning,
    Think,
    Strip,
    Details,
}

impl ThinkMode {
    pub const ALL: [ThinkMode; 4] = [Self::Reasoning, Self::Think, Self::Strip, Self::Details];

    /// The setting's spelling (`reasoning`, `think`, `strip`, `details`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reasoning => "reasoning",
            Self::Think => "think",
            Self::Strip => "strip",
            Self::Details => "details",
        }
    }

    /// Case-insensitive parse of the setting's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

impl fmt::Display for ThinkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one semantic event adds to the two OpenAI text fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub reasoning: String,
    pub content: String,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty()
    }
}

#[derive(Debug)]
pub struct ThinkRenderer {
    mode: ThinkMode,
    /// A reasoning block is open and its opening has been written.
    block_open: bool,
    /// Something interrupted the answer (a tool call, a reasoning block) since it was last written.
    interrupted: bool,
    /// The last two characters written to `content` (for the blank-line rule).
    content_tail: [Option<char>; 2],
    content_written: bool,
    reasoning_written: bool,
}

impl ThinkRenderer {
    pub fn new(mode: ThinkMode) -> Self {
        Self {
            mode,
            block_open: false,
            interrupted: false,
            content_tail: [None, None],
            content_written: false,
            reasoning_written: false,
        }
    }

    /// Renders one event into `delta` (appending).
    pub fn push(&mut self, event: &Semantic, delta: &mut Delta) {
        match event {
            Semantic::ThinkingStart => {
                self.interrupted = true;
            }
            Semantic::Reasoning(text) if !text.is_empty() => {
                if !self.block_open {
                    self.open_block(delta);
                }
                match self.mode {
                    ThinkMode::Reasoning => {
                        delta.reasoning.push_str(text);
                        self.reasoning_written = true;
                    }
                    ThinkMode::Strip => self.content(delta, &text.replace('\n', "\n> ")),
                    ThinkMode::Think | ThinkMode::Details => self.content(delta, text),
                }
            }
            Semantic::ThinkingEnd { duration_secs } => {
                if self.block_open {
                    self.block_open = false;
                    match self.mode {
                        ThinkMode::Reasoning => {}
                        ThinkMode::Think => self.content(delta, "\n\n</think>\n\n"),
                        ThinkMode::Strip => self.content(delta, "\n\n"),
                        ThinkMode::Details => {
                            let n = duration_secs.unwrap_or(0);
                            self.content(
                                delta,
                                &format!("\n\n</div><summary>Thought for {n} seconds</summary></details>\n\n"),
                            );
                        }
                    }
                }
                self.interrupted = true;
            }
            Semantic::Answer(text) if !text.is_empty() => {
                if self.block_open {
                    // Upstream never answers inside an open block, but if the block's end was lost
                    // the wrapper must still be closed before the answer.
                    self.push(
                        &Semantic::ThinkingEnd {
                            duration_secs: None,
                        },
                        delta,
                    );
                }
                if self.interrupted {
                    self.separate(delta);
                }
                self.interrupted = false;
                self.content(delta, text);
            }
            Semantic::Tool(_)
            | Semantic::ToolStart { .. }
            | Semantic::ToolCall(_)
            | Semantic::ToolCallStart { .. } => self.interrupted = true,
            Semantic::ToolArgs(_)
            | Semantic::ToolCallArgs(_)
            | Semantic::Reasoning(_)
            | Semantic::Answer(_)
            | Semantic::Usage(_)
            | Semantic::Error(_)
            | Semantic::Done => {}
        }
    }

    /// Closes an open block at the end of a stream that never closed it.
    pub fn finish(&mut self, delta: &mut Delta) {
        if self.block_open {
            self.push(
                &Semantic::ThinkingEnd {
                    duration_secs: None,
                },
                delta,
            );
        }
    }

    fn open_block(&mut self, delta: &mut Delta) {
        self.block_open = true;
        match self.mode {
            ThinkMode::Reasoning => {
                if self.reasoning_written {
                    delta.reasoning.push_str("\n\n");
                }
            }
            ThinkMode::Think => {
                self.separate(delta);
                self.content(delta, "<think>\n\n");
            }
            ThinkMode::Strip => {
                self.separate(delta);
                self.content(delta, "> ");
            }
            ThinkMode::Details => {
                self.separate(delta);
                self.content(delta, "<details type=\"reasoning\" open><div>\n\n");
            }
        }
    }

    /// Makes sure `content` ends with a blank line before a new run (if it has any text at all).
    fn separate(&mut self, delta: &mut Delta) {
        if !self.content_written {
            return;
        }
        match self.content_tail {
            [_, Some('\n')] if self.content_tail[0] == Some('\n') => {}
            [_, Some('\n')] => self.content(delta, "\n"),
            _ => self.content(delta, "\n\n"),
        }
    }

    fn content(&mut self, delta: &mut Delta, text: &str) {
        if text.is_empty() {
            return;
        }
        delta.content.push_str(text);
        self.content_written = true;
        let mut chars = text.chars().rev();
        let last = chars.next();
        let before = chars.next().or(self.content_tail[1]);
        self.content_tail = [before, last];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(mode: ThinkMode, events: &[Semantic]) -> Delta {
        let mut r = ThinkRenderer::new(mode);
        let mut d = Delta::default();
        for e in events {
            r.push(e, &mut d);
        }
        r.finish(&mut d);
        d
    }

    /// The seed's example: R = 嗯，用户……, A = 你好！, N = 1.
    fn seed() -> Vec<Semantic> {
        vec![
            Semantic::ThinkingStart,
            Semantic::Reasoning("嗯，".into()),
            Semantic::Reasoning("用户……".into()),
            Semantic::ThinkingEnd {
                duration_secs: Some(1),
            },
            Semantic::Answer("你好".into()),
            Semantic::Answer("！".into()),
            Semantic::Done,
        ]
    }

    #[test]
    fn seed_examples() {
        let d = render(ThinkMode::Reasoning, &seed());
        assert_eq!(
            (d.reasoning.as_str(), d.content.as_str()),
            ("嗯，用户……", "你好！")
        );
        assert_eq!(
            render(ThinkMode::Think, &seed()).content,
            "<think>\n\n嗯，用户……\n\n</think>\n\n你好！"
        );
        assert_eq!(
            render(ThinkMode::Strip, &seed()).content,
            "> 嗯，用户……\n\n你好！"
        );
        assert_eq!(
            render(ThinkMode::Details, &seed()).content,
            "<details type=\"reasoning\" open><div>\n\n嗯，用户……\n\n</div><summary>Thought for 1 seconds</summary></details>\n\n你好！"
        );
    }

    #[test]
    fn strip_quotes_every_line() {
        let events = [
            Semantic::ThinkingStart,
            Semantic::Reasoning("a\nb".into()),
            Semantic::Reasoning("\nc".into()),
            Semantic::ThinkingEnd {
                duration_secs: None,
            },
            Semantic::Answer("X".into()),
        ];
        assert_eq!(
            render(ThinkMode::Strip, &events).content,
            "> a\n> b\n> c\n\nX"
        );
    }

    #[test]
    fn runs_and_blocks_are_joined_by_one_blank_line() {
        let events = [
            Semantic::Answer("One.".into()),
            Semantic::Tool(crate::semantic::ToolBlock {
                id: "c".into(),
                name: "search".into(),
                arguments: "{}".into(),
            }),
            Semantic::ThinkingStart,
            Semantic::Reasoning("r2".into()),
            Semantic::ThinkingEnd {
                duration_secs: Some(0),
            },
            Semantic::Answer("Two.".into()),
        ];
        let d = render(ThinkMode::Reasoning, &events);
        assert_eq!(d.content, "One.\n\nTwo.");
        assert_eq!(d.reasoning, "r2");
        assert_eq!(
            render(ThinkMode::Think, &events).content,
            "One.\n\n<think>\n\nr2\n\n</think>\n\nTwo."
        );
        let two_blocks = [
            Semantic::ThinkingStart,
            Semantic::Reasoning("r1".into()),
            Semantic::ThinkingEnd {
                duration_secs: None,
            },
            Semantic::ThinkingStart,
            Semantic::Reasoning("r2".into()),
            Semantic::ThinkingEnd {
                duration_secs: None,
            },
        ];
        assert_eq!(
            render(ThinkMode::Reasoning, &two_blocks).reasoning,
            "r1\n\nr2"
        );
    }

    #[test]
    fn empty_blocks_render_as_nothing_and_open_blocks_close() {
        let events = [
            Semantic::ThinkingStart,
            Semantic::ThinkingEnd {
                duration_secs: Some(2),
            },
            Semantic::Answer("A".into()),
        ];
        assert_eq!(render(ThinkMode::Details, &events).content, "A");
        let open = [Semantic::ThinkingStart, Semantic::Reasoning("r".into())];
        assert_eq!(
            render(ThinkMode::Think, &open).content,
            "<think>\n\nr\n\n</think>\n\n"
        );
    }
}
