//! The operator dashboard (ratatui + crossterm + tokio). It is a face over `core`, like the
//! CLI: input event → action → worker → progress message → state → render. Not built yet.
