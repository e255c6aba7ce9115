//! Record values are untrusted: before any of them reaches a terminal (CLI output or the TUI),
//! every character that could steer the terminal, that renders as nothing, or that moves text
//! is replaced by a visible escape. A value can then neither move the cursor, recolour the
//! screen nor reorder text, and it cannot hide a difference from the steward either: an email
//! with a zero-width space must not look like its twin. [`for_terminal`] holds the rules and
//! the reason for each class. JSON output gets the same characters escaped the JSON way
//! (`\u200b`), which keeps the data exact. Pure functions over strings; nothing is printed here.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

/// Combining marks kept on one base character. Real text needs at most three or four
/// (Vietnamese two, pointed Hebrew with cantillation and Tibetan stacks up to four); "Zalgo"
/// text piles up dozens, which terminals draw over the lines above and below.
pub const MAX_MARKS: usize = 4;

const ZWJ: char = '\u{200D}';
const VS15: char = '\u{FE0E}';
const VS16: char = '\u{FE0F}';
const KEYCAP: char = '\u{20E3}';
const BLACK_FLAG: char = '\u{1F3F4}';

/// The value with every character that must not reach a terminal as itself shown as an
/// escape: `\e` for ESC, `\0`, `\n`, `\t`, `\r`, and `\u{XXXX}` for the rest.
///
/// Escaped, because it steers the terminal, renders as nothing, or moves text:
/// - control characters (C0, DEL, C1);
/// - format characters (general category Cf): zero-width space, non-joiner and joiner, word
///   joiner and the invisible operators U+2060–U+2064, soft hyphen, bidi marks, embeddings,
///   overrides and isolates, BOM, Arabic letter mark, Mongolian vowel separator, interlinear
///   annotation, tag characters, and the rest of Cf;
/// - line and paragraph separators U+2028, U+2029;
/// - every space other than U+0020 (no-break, en, em, thin, hair, narrow, ideographic, ...):
///   each looks like a space and is not one;
/// - other characters that render as nothing: combining grapheme joiner, Hangul fillers,
///   Khmer inherent vowels, Mongolian free variation selectors, Braille pattern blank, and
///   variation selectors where they select nothing;
/// - unassigned code points and noncharacters: no glyph, and a terminal's guess at their
///   width breaks the columns;
/// - a combining mark with nothing to sit on (at the start, after a space or after an escape),
///   and marks beyond [`MAX_MARKS`] on one base.
///
/// Kept, because it renders visibly as what it is:
/// - letters with accents, precomposed or with combining marks; every script, CJK included;
/// - emoji, with the joiners and selectors of an emoji sequence: a ZWJ between two emoji
///   (👩‍💻), VS15/VS16 after an emoji or in a keycap (1️⃣), skin tones, the tag characters
///   of a subdivision flag (🏴 + tags);
/// - ideographic variation selectors after a CJK ideograph (variant glyphs in Japanese names);
/// - private-use characters, which a terminal draws as a box or an icon.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) || is_clean(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (c, keep) in Scan::new(s) {
        if keep {
            out.push(c);
        } else {
            push_escape(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// Whether [`for_terminal`] leaves the value as it is.
pub fn is_clean(s: &str) -> bool {
    Scan::new(s).all(|(_, keep)| keep)
}

/// The characters [`for_terminal`] escapes, in order (to tell a control character from an
/// invisible one, for instance).
pub fn escaped(s: &str) -> impl Iterator<Item = char> + '_ {
    Scan::new(s).filter(|(_, keep)| !keep).map(|(c, _)| c)
}

/// The escape of one character, as [`for_terminal`] writes it.
pub fn push_escape(out: &mut String, c: char) {
    match c {
        '\u{1b}' => out.push_str("\\e"),
        '\0' => out.push_str("\\0"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        other => {
            let _ = write!(out, "\\u{{{:04X}}}", other as u32);
        }
    }
}

/// Every character with the escape of [`for_terminal`], whether or not it would be kept;
/// ASCII letters, digits and punctuation stay. For a difference that would otherwise not be
/// seen (a combining mark alone, or `é` against `e` + U+0301).
pub fn escape_all_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 4);
    for c in s.chars() {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            push_escape(&mut out, c);
        }
    }
    out
}

/// Walks a value and says for each character whether it is kept, with the context the rules
/// need: the previous character and whether it was kept, the next one, and how many
/// combining marks the current base already carries.
struct Scan<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    prev: Option<(char, bool)>,
    marks: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Scan<'a> {
        Scan {
            chars: s.chars().peekable(),
            prev: None,
            marks: 0,
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = (char, bool);

    fn next(&mut self) -> Option<(char, bool)> {
        let c = self.chars.next()?;
        let next = self.chars.peek().copied();
        let kept_prev = self.prev.filter(|(_, kept)| *kept).map(|(p, _)| p);
        let mark = is_mark(c);
        let keep = keep(c, kept_prev, next, self.marks);
        self.marks = match (mark, keep) {
            (true, true) => self.marks + 1,
            (true, false) => self.marks,
            (false, _) => 0,
        };
        self.prev = Some((c, keep));
        Some((c, keep))
    }
}

fn is_mark(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark
    )
}

/// Whether `c` may reach a terminal as itself. `prev` is the previous character when it was
/// kept (an escaped one is no base to combine with or join to).
fn keep(c: char, prev: Option<char>, next: Option<char>, marks: usize) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    match c.general_category() {
        GeneralCategory::Control
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator
        | GeneralCategory::SpaceSeparator
        | GeneralCategory::Unassigned
        | GeneralCategory::Surrogate => false,
        GeneralCategory::Format => match c {
            ZWJ => prev.is_some_and(is_emoji_piece) && next.is_some_and(is_pictograph),
            // A subdivision flag: 🏴, tag letters, cancel tag.
            '\u{E0020}'..='\u{E007F}' => {
                prev.is_some_and(|p| p == BLACK_FLAG || ('\u{E0020}'..='\u{E007E}').contains(&p))
            }
            _ => false,
        },
        GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark => {
            if is_variation_selector(c) {
                return selects_something(c, prev, next);
            }
            if is_ignorable_mark(c) {
                return false;
            }
            prev.is_some_and(|p| p != ' ') && marks < MAX_MARKS
        }
        _ => !is_blank_letter(c),
    }
}

fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// A variation selector changes how its base is drawn only in a sequence the standard
/// defines; anywhere else it is invisible, so it is kept only where it does something:
/// VS15/VS16 after an emoji (text or emoji presentation) or in a keycap, and the ideographic
/// selectors after a CJK ideograph.
fn selects_something(c: char, prev: Option<char>, next: Option<char>) -> bool {
    let Some(base) = prev else {
        return false;
    };
    match c {
        VS15 | VS16 if base.is_ascii() => {
            matches!(base, '0'..='9' | '#' | '*') && next == Some(KEYCAP)
        }
        VS15 | VS16 => base.is_emoji_char(),
        _ => is_ideograph(base),
    }
}

/// Marks that are default-ignorable: they render as nothing even on a base.
fn is_ignorable_mark(c: char) -> bool {
    matches!(
        c,
        '\u{034F}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180D}' | '\u{180F}'
    )
}

/// Letters and symbols whose glyph is empty: the Hangul fillers and the blank Braille
/// pattern, both used to make names that look empty or identical.
fn is_blank_letter(c: char) -> bool {
    matches!(
        c,
        '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
    )
}

fn is_ideograph(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3FFFF}')
}

/// What a ZWJ sequence's joiner may follow: a pictographic emoji (they all sit from U+1F000
/// on; older symbols such as ❤ or ⛹ join only with VS16 after them, and a joiner between two
/// ™ would hide itself), VS16, or a skin tone.
fn is_emoji_piece(c: char) -> bool {
    c == VS16 || (u32::from(c) >= 0x1F000 && c.is_emoji_char())
}

/// Emoji other than the ASCII characters that only become emoji in a keycap.
fn is_pictograph(c: char) -> bool {
    !c.is_ascii() && c.is_emoji_char()
}

/// Whether JSON output escapes this character (`\u200b`): everything [`for_terminal`] may
/// escape, without looking at the context, except combining marks on a base (accents in
/// decomposed text). Lossless, so JSON can be conservative where the terminal text cannot.
fn json_escapes(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    match c.general_category() {
        GeneralCategory::Control
        | GeneralCategory::Format
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator
        | GeneralCategory::SpaceSeparator
        | GeneralCategory::Unassigned
        | GeneralCategory::Surrogate => true,
        _ => is_variation_selector(c) || is_ignorable_mark(c) || is_blank_letter(c),
    }
}

/// A serde_json formatter that writes the characters a terminal must not see as `\uXXXX`
/// escapes, so `--json` output and JSON Lines exports are safe to print and still parse to
/// exactly the same data.
struct TerminalSafe<F>(F);

impl<F: Formatter> Formatter for TerminalSafe<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if json_escapes(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // The layout is the inner formatter's (pretty or compact).
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Pretty JSON, safe to print: see [`TerminalSafe`].
pub fn json_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, TerminalSafe(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    // Only whole `str`s and ASCII escapes were written.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One line of compact JSON (no newline), safe to print.
pub fn json_line<T: Serialize + ?Sized>(
    writer: &mut dyn io::Write,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(writer, TerminalSafe(CompactFormatter));
    value.serialize(&mut ser)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(s: &str) -> String {
        for_terminal(s).into_owned()
    }

    #[test]
    fn controls_and_bidi_become_visible_escapes() {
        let cases = [
            ("plain José Müller", "plain José Müller"),
            ("\u{1b}[31mred\u{1b}[0m", "\\e[31mred\\e[0m"),
            ("a\0b", "a\\0b"),
            ("line\nbreak\ttab\r", "line\\nbreak\\ttab\\r"),
            ("\u{202E}evil", "\\u{202E}evil"),
            ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
            ("\u{200E}\u{200F}\u{061C}", "\\u{200E}\\u{200F}\\u{061C}"),
            ("\u{9b}31m", "\\u{009B}31m"),
            ("\u{85}", "\\u{0085}"),
            ("\u{7f}", "\\u{007F}"),
            ("\u{FEFF}bom", "\\u{FEFF}bom"),
        ];
        for (input, want) in cases {
            assert_eq!(shown(input), want, "{input:?}");
        }
        assert!(matches!(for_terminal("safe"), Cow::Borrowed(_)));
        assert!(matches!(for_terminal("Zoë 日本"), Cow::Borrowed(_)));
    }

    #[test]
    fn zero_width_and_invisible_format_characters_are_shown() {
        let cases = [
            ("anna\u{200B}@example.com", "anna\\u{200B}@example.com"),
            ("a\u{200C}b", "a\\u{200C}b"),
            ("a\u{200D}b", "a\\u{200D}b"),
            ("a\u{2060}b", "a\\u{2060}b"),
            (
                "f\u{2061}x\u{2062}y\u{2063}z\u{2064}",
                "f\\u{2061}x\\u{2062}y\\u{2063}z\\u{2064}",
            ),
            ("Ander\u{AD}son", "Ander\\u{00AD}son"),
            ("a\u{180E}b", "a\\u{180E}b"),
            ("a\u{FFF9}b\u{FFFB}", "a\\u{FFF9}b\\u{FFFB}"),
            ("x\u{E0001}\u{E0065}", "x\\u{E0001}\\u{E0065}"),
            ("\u{E0041}tag", "\\u{E0041}tag"),
        ];
        for (input, want) in cases {
            assert_eq!(shown(input), want, "{input:?}");
        }
    }

    #[test]
    fn separators_and_spaces_that_are_not_spaces_are_shown() {
        let cases = [
            ("one\u{2028}two\u{2029}", "one\\u{2028}two\\u{2029}"),
            ("Anna\u{A0}Berg", "Anna\\u{00A0}Berg"),
            ("1\u{202F}000\u{2009}€", "1\\u{202F}000\\u{2009}€"),
            ("山田\u{3000}太郎", "山田\\u{3000}太郎"),
            (
                "\u{1680}\u{2000}\u{200A}\u{205F}",
                "\\u{1680}\\u{2000}\\u{200A}\\u{205F}",
            ),
            ("plain space", "plain space"),
        ];
        for (input, want) in cases {
            assert_eq!(shown(input), want, "{input:?}");
        }
    }

    #[test]
    fn blank_letters_ignorables_and_unassigned_are_shown() {
        let cases = [
            ("\u{3164}", "\\u{3164}"),
            ("a\u{115F}\u{1160}\u{FFA0}", "a\\u{115F}\\u{1160}\\u{FFA0}"),
            ("\u{2800}", "\\u{2800}"),
            ("a\u{34F}b", "a\\u{034F}b"),
            ("\u{1780}\u{17B4}", "\u{1780}\\u{17B4}"),
            ("a\u{2065}", "a\\u{2065}"),
            ("\u{FDD0}\u{FFFF}", "\\u{FDD0}\\u{FFFF}"),
        ];
        for (input, want) in cases {
            assert_eq!(shown(input), want, "{input:?}");
        }
    }

    #[test]
    fn combining_marks_stay_on_their_base_and_nowhere_else() {
        // Decomposed accents, Vietnamese and Devanagari stay as they are.
        for kept in [
            "Jose\u{301}",
            "Zoe\u{308}",
            "Vie\u{323}\u{302}t",
            "नमस्ते",
            "Ωμέγα",
        ] {
            assert_eq!(shown(kept), kept);
        }
        assert_eq!(shown("\u{301}Jose"), "\\u{0301}Jose");
        assert_eq!(shown("a \u{301}"), "a \\u{0301}");
        assert_eq!(shown("\t\u{301}"), "\\t\\u{0301}");
        assert_eq!(shown("\u{200B}\u{301}"), "\\u{200B}\\u{0301}");
        // Zalgo: four marks on a base stay, the fifth and after are escaped.
        let zalgo = format!("Z{}", "\u{336}".repeat(6));
        assert_eq!(
            shown(&zalgo),
            format!("Z{}{}", "\u{336}".repeat(4), "\\u{0336}".repeat(2))
        );
    }

    #[test]
    fn emoji_sequences_display_and_their_parts_alone_do_not() {
        for kept in [
            "👩\u{200D}💻",
            "👨\u{200D}👩\u{200D}👧",
            "🏃\u{200D}♀\u{FE0F}",
            "❤\u{FE0F}",
            "☺\u{FE0E}",
            "1\u{FE0F}\u{20E3}",
            "👍🏽",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "🇩🇪",
            "葛\u{E0100}",
            "\u{E000}",
        ] {
            assert_eq!(shown(kept), kept, "{kept:?}");
        }
        assert_eq!(shown("Ander\u{FE0F}"), "Ander\\u{FE0F}");
        assert_eq!(shown("1\u{FE0F}"), "1\\u{FE0F}");
        assert_eq!(shown("a\u{E0100}"), "a\\u{E0100}");
        assert_eq!(shown("👩\u{200D}"), "👩\\u{200D}");
        assert_eq!(shown("👩\u{200D}a"), "👩\\u{200D}a");
        assert_eq!(shown("™\u{200D}™"), "™\\u{200D}™");
        assert_eq!(shown("❤\u{FE0F}\u{200D}🔥"), "❤\u{FE0F}\u{200D}🔥");
    }

    #[test]
    fn escapes_and_clean_values_agree() {
        assert!(is_clean("Zoë 👩\u{200D}💻"));
        assert!(!is_clean("anna\u{200B}@x.de"));
        assert_eq!(
            escaped("a\tb\u{200B}c").collect::<Vec<_>>(),
            ['\t', '\u{200B}']
        );
        // Escaping twice changes nothing: an escape is plain ASCII.
        let once = shown("a\u{200B}\u{1b}b\u{301}");
        assert_eq!(shown(&once), once);
        assert_eq!(escape_all_non_ascii("e\u{301}é"), "e\\u{0301}\\u{00E9}");
    }

    #[test]
    fn json_keeps_the_data_and_escapes_what_a_terminal_must_not_see() {
        let value = serde_json::json!({
            "name": "Mallory\u{1b}[2J\u{9b}\u{202E}\u{200B}\u{2028}\u{A0}",
            "emoji": "👩\u{200D}💻",
            "accent": "Jose\u{301}",
        });
        let text = json_pretty(&value).unwrap();
        assert!(
            text.contains("\\u001b[2J\\u009b\\u202e\\u200b\\u2028\\u00a0"),
            "{text}"
        );
        assert!(text.contains("👩\\u200d💻"), "{text}");
        assert!(text.contains("Jose\u{301}"));
        assert!(
            text.contains("\n  \"accent\""),
            "pretty layout kept: {text}"
        );
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
        let mut line = Vec::new();
        json_line(&mut line, &value).unwrap();
        let line = String::from_utf8(line).unwrap();
        assert!(!line.contains('\n') && line.contains("\\u202e"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            value
        );
    }
}
