//! Styles of the review screens in one place. Colour is never the only signal: every style
//! that marks a difference also carries a modifier, and the markers in the text carry the
//! meaning, so the screens read the same under `NO_COLOR` and on a monochrome terminal.
//!
//! Two palettes: the dark one in the terminal's own named colours, and a light one for a white
//! background in fixed RGB colours, each with a contrast of at least 4.5:1 against white (the
//! WCAG minimum for text; the named colours measured 1.7–3.5 there, and `DIM` lowers it
//! further, so the light palette never dims).

use ratatui::style::{Color, Modifier, Style};

/// Which background the colours are chosen for (`[ui] theme`, resolved from "auto").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Palette {
    #[default]
    Dark,
    Light,
}

impl Palette {
    /// "auto" reads `COLORFGBG` ("15;0": white on black, "0;15": black on white), as rxvt,
    /// Konsole and others set it: a background of 7 or 9–15 is light. Unset or unreadable:
    /// dark, the common case.
    pub fn from_colorfgbg(value: Option<&str>) -> Palette {
        let bg = value
            .and_then(|v| v.rsplit(';').next())
            .and_then(|b| b.trim().parse::<u8>().ok());
        match bg {
            Some(7) | Some(9..=15) => Palette::Light,
            _ => Palette::Dark,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
    palette: Palette,
}

/// The light palette's colours, for a white background.
mod light {
    use ratatui::style::Color;
    /// Titles and keys: #005F87, 7.1:1 on white.
    pub const ACCENT: Color = Color::Rgb(0x00, 0x5f, 0x87);
    /// Dimmed text: #595959, 7.0:1.
    pub const DIM: Color = Color::Rgb(0x59, 0x59, 0x59);
    /// Differing fields: #8A5300, 5.9:1.
    pub const DIFFERS: Color = Color::Rgb(0x8a, 0x53, 0x00);
    /// Changed characters and errors: #B00020, 6.6:1.
    pub const RED: Color = Color::Rgb(0xb0, 0x00, 0x20);
    /// Survivors, picks, success: #1E6B1E, 6.4:1.
    pub const GREEN: Color = Color::Rgb(0x1e, 0x6b, 0x1e);
    /// Rejected: #8B008B, 8.0:1.
    pub const MAGENTA: Color = Color::Rgb(0x8b, 0x00, 0x8b);
    /// Running: #0033A0, 10:1.
    pub const BLUE: Color = Color::Rgb(0x00, 0x33, 0xa0);
}

impl Theme {
    /// The dark palette, or no colour at all.
    pub fn new(no_color: bool) -> Theme {
        Theme::with_palette(no_color, Palette::Dark)
    }

    pub fn with_palette(no_color: bool, palette: Palette) -> Theme {
        Theme {
            color: !no_color,
            palette,
        }
    }

    fn light(self) -> bool {
        self.palette == Palette::Light
    }

    /// `dark` on a dark background, `light` on a light one.
    fn fg(self, dark: Color, light: Color) -> Style {
        match (self.color, self.light()) {
            (false, _) => Style::new(),
            (true, false) => Style::new().fg(dark),
            (true, true) => Style::new().fg(light),
        }
    }

    pub fn title(self) -> Style {
        self.fg(Color::Cyan, light::ACCENT)
            .add_modifier(Modifier::BOLD)
    }
    pub fn header(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn dim(self) -> Style {
        if self.color && self.light() {
            Style::new().fg(light::DIM)
        } else {
            self.fg(Color::DarkGray, light::DIM)
                .add_modifier(Modifier::DIM)
        }
    }
    pub fn cursor(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    /// A field whose values differ: the marker and the field name.
    pub fn differs(self) -> Style {
        self.fg(Color::Yellow, light::DIFFERS)
            .add_modifier(Modifier::BOLD)
    }
    /// Characters of a value that the surviving value does not have.
    pub fn changed(self) -> Style {
        self.fg(Color::LightRed, light::RED)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
    pub fn survivor(self) -> Style {
        self.fg(Color::Green, light::GREEN)
    }
    pub fn picked(self) -> Style {
        self.fg(Color::Green, light::GREEN)
            .add_modifier(Modifier::BOLD)
    }
    pub fn error(self) -> Style {
        self.fg(Color::Red, light::RED).add_modifier(Modifier::BOLD)
    }
    pub fn ok(self) -> Style {
        self.fg(Color::Green, light::GREEN)
    }
    pub fn key(self) -> Style {
        self.fg(Color::Cyan, light::ACCENT)
            .add_modifier(Modifier::BOLD)
    }
    pub fn status(self, status: &str) -> Style {
        match status {
            "approved" | "merged" => self.fg(Color::Green, light::GREEN),
            "rejected" => self.fg(Color::Magenta, light::MAGENTA),
            "failed" | "needs_attention" => {
                self.fg(Color::Red, light::RED).add_modifier(Modifier::BOLD)
            }
            "deferred" | "stale" => self.fg(Color::Yellow, light::DIFFERS),
            "merging" | "running" => self.fg(Color::Blue, light::BLUE),
            _ => Style::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG 2 relative luminance of an sRGB colour.
    fn luminance(c: Color) -> f64 {
        let Color::Rgb(r, g, b) = c else {
            panic!("{c:?} is not an RGB colour: its contrast depends on the terminal");
        };
        let lin = |v: u8| {
            let s = f64::from(v) / 255.0;
            if s <= 0.03928 {
                s / 12.92
            } else {
                ((s + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    }

    fn contrast_on_white(c: Color) -> f64 {
        (1.0 + 0.05) / (luminance(c) + 0.05)
    }

    #[test]
    fn every_light_style_reads_on_white() {
        let t = Theme::with_palette(false, Palette::Light);
        let mut styles = vec![
            ("title", t.title()),
            ("dim", t.dim()),
            ("differs", t.differs()),
            ("changed", t.changed()),
            ("survivor", t.survivor()),
            ("picked", t.picked()),
            ("error", t.error()),
            ("ok", t.ok()),
            ("key", t.key()),
        ];
        for s in [
            "approved", "rejected", "failed", "deferred", "merging", "pending",
        ] {
            styles.push((s, t.status(s)));
        }
        for (name, style) in styles {
            // No colour is the terminal's own text colour, readable by definition.
            let Some(fg) = style.fg else { continue };
            let ratio = contrast_on_white(fg);
            assert!(ratio >= 4.5, "{name}: {fg:?} has {ratio:.2}:1 on white");
            assert!(
                !style.add_modifier.contains(Modifier::DIM),
                "{name}: DIM lowers the contrast"
            );
        }
        // The check itself: black is 21:1, the dark palette's yellow on white would fail.
        assert!((contrast_on_white(Color::Rgb(0, 0, 0)) - 21.0).abs() < 0.01);
        assert!(contrast_on_white(Color::Rgb(0xcd, 0xcd, 0x00)) < 4.5);
    }

    #[test]
    fn auto_reads_colorfgbg_and_no_color_wins() {
        assert_eq!(Palette::from_colorfgbg(Some("0;15")), Palette::Light);
        assert_eq!(Palette::from_colorfgbg(Some("0;default;7")), Palette::Light);
        assert_eq!(Palette::from_colorfgbg(Some("15;0")), Palette::Dark);
        assert_eq!(Palette::from_colorfgbg(Some("junk")), Palette::Dark);
        assert_eq!(Palette::from_colorfgbg(None), Palette::Dark);
        let plain = Theme::with_palette(true, Palette::Light);
        assert_eq!(plain.key().fg, None);
        assert_eq!(plain.dim().fg, None);
    }
}
