//! Styles of the review screens in one place. Colour is never the only signal: every style
//! that marks a difference also carries a modifier, and the markers in the text carry the
//! meaning, so the screens read the same under `NO_COLOR` and on a monochrome terminal.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    pub fn new(no_color: bool) -> Theme {
        Theme { color: !no_color }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn dim(self) -> Style {
        self.fg(Color::DarkGray).add_modifier(Modifier::DIM)
    }
    pub fn cursor(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    /// A field whose values differ: the marker and the field name.
    pub fn differs(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    /// Characters of a value that the surviving value does not have.
    pub fn changed(self) -> Style {
        self.fg(Color::LightRed)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    pub fn survivor(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn picked(self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }
    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn status(self, status: &str) -> Style {
        match status {
            "approved" | "merged" => self.fg(Color::Green),
            "rejected" => self.fg(Color::Magenta),
            "failed" | "needs_attention" => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            "deferred" | "stale" => self.fg(Color::Yellow),
            "merging" | "running" => self.fg(Color::Blue),
            _ => Style::new(),
        }
    }
}
