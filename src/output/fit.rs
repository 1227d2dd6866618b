//! Output that fits the reader's width: every table the command line prints is built here
//! ([`Columns`]), and the prose around it is wrapped to the same width ([`wrap`]).
//!
//! The width ([`limit`]) is `$COLUMNS` when set, else the terminal's when stdout is one, else
//! none: a pipe to `grep` keeps whole rows. Each table says, column by column, what may give
//! way when it is too wide ([`Fit`]): identifiers stay whole (copy-pasteable); the columns a
//! reader needs least give way first, wrapped down to a minimum or left out. No line ends in a space. This module owns layout only; the text of the cells is
//! made by the commands.

use comfy_table::{ColumnConstraint, ContentArrangement, Table, Width, presets};

/// What a column may do when the table is wider than [`limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never narrowed: ids, amounts, short states.
    Whole,
    /// Wrapped down to `min` characters; columns of lower `rank` give way first.
    Wrap {
        /// Order of giving way, lowest first.
        rank: u8,
        /// The narrowest the column gets, in characters.
        min: u16,
    },
    /// Left out when the table is still too wide at its `rank`'s turn.
    Optional {
        /// Order of giving way, lowest first.
        rank: u8,
    },
}

impl Fit {
    fn rank(self) -> Option<u8> {
        match self {
            Fit::Whole => None,
            Fit::Wrap { rank, .. } | Fit::Optional { rank } => Some(rank),
        }
    }

    fn min(self) -> u16 {
        match self {
            Fit::Whole | Fit::Optional { .. } => u16::MAX,
            Fit::Wrap { min, .. } => min,
        }
    }
}

/// Each cell is padded by one space on either side.
const PADDING: u16 = 2;

/// The width output must fit, in characters: `$COLUMNS` when it is a positive number, else
/// the terminal's width when stdout is a terminal, else `None` (no limit).
#[must_use]
pub fn limit() -> Option<u16> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()).filter(|n| *n > 0) {
        return Some(n);
    }
    use std::io::IsTerminal;
    let out = std::io::stdout();
    if !out.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&out).map(|(w, _)| w.0).filter(|w| *w > 0)
}

/// A table being filled: a header with a [`Fit`] per column, then rows; [`Columns::render`]
/// lays it out for [`limit`].
pub struct Columns {
    table: Table,
    fits: Vec<Fit>,
    /// The widest line of each column so far, header included, in characters.
    natural: Vec<u16>,
}

impl Columns {
    /// An empty table with these columns.
    #[must_use]
    pub fn new(columns: &[(&'static str, Fit)]) -> Columns {
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        table.set_header(columns.iter().map(|(h, _)| *h).collect::<Vec<_>>());
        Columns {
            table,
            fits: columns.iter().map(|(_, f)| *f).collect(),
            natural: columns.iter().map(|(h, _)| widest(h)).collect(),
        }
    }

    /// Adds a row, one cell per column (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        for (n, c) in self.natural.iter_mut().zip(&cells) {
            *n = (*n).max(widest(c));
        }
        self.table.add_row(cells);
    }

    /// The table laid out for [`limit`], every line ending in `\n`, none in a space.
    #[must_use]
    pub fn render(self) -> String {
        self.render_for(limit())
    }

    /// The table laid out for `width` characters (`None`: as wide as its content).
    #[must_use]
    pub fn render_for(mut self, width: Option<u16>) -> String {
        if let Some(width) = width {
            let widths = widths(&self.natural, &self.fits, width);
            self.table.set_content_arrangement(ContentArrangement::Dynamic).set_width(width);
            for (i, w) in widths.iter().enumerate() {
                if let Some(c) = self.table.column_mut(i) {
                    c.set_constraint(match w {
                        None => ColumnConstraint::Hidden,
                        Some(w) => ColumnConstraint::Absolute(Width::Fixed(w.saturating_add(PADDING))),
                    });
                }
            }
        }
        let mut out = String::new();
        for line in self.table.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The widest line of `text`, in characters.
fn widest(text: &str) -> u16 {
    text.lines().map(|l| u16::try_from(textwrap::core::display_width(l)).unwrap_or(u16::MAX)).max().unwrap_or(0)
}

/// The content width of each column (`None`: left out) for a table of `natural` widths to
/// fit `limit` characters. In rank order, while the table is too wide, a wrapped column
/// narrows to its minimum and an optional one is left out; then the room that freed goes
/// back to the wrapped columns. Whole columns never change; if they alone are too wide, the
/// table is too.
fn widths(natural: &[u16], fits: &[Fit], limit: u16) -> Vec<Option<u16>> {
    let mut w: Vec<Option<u16>> = natural.iter().map(|n| Some(*n)).collect();
    let total = |w: &[Option<u16>]| -> u32 { w.iter().flatten().map(|n| u32::from(*n) + u32::from(PADDING)).sum() };
    let mut order: Vec<usize> = (0..fits.len()).filter(|i| fits[*i].rank().is_some()).collect();
    order.sort_by_key(|i| fits[*i].rank());
    for &i in &order {
        let excess = total(&w).saturating_sub(u32::from(limit));
        if excess == 0 {
            break;
        }
        match (fits[i], w[i]) {
            (Fit::Optional { .. }, _) => w[i] = None,
            (_, Some(n)) => {
                let floor = fits[i].min().min(n);
                w[i] = Some(n - u16::try_from(excess.min(u32::from(n - floor))).unwrap_or(0));
            }
            (_, None) => {}
        }
    }
    // What leaving a column out freed goes back to the wrapped ones: whole again, most useful
    // first, then what is left to the first to give way (prose wraps well, a time does not).
    let slack = |w: &[Option<u16>]| u32::from(limit).saturating_sub(total(w));
    for &i in order.iter().rev() {
        if let Some(n) = w[i].filter(|n| u32::from(natural[i] - n) <= slack(&w)) {
            w[i] = Some(n.max(natural[i]));
        }
    }
    for &i in &order {
        if let Some(n) = w[i] {
            w[i] = Some(n + u16::try_from(slack(&w).min(u32::from(natural[i] - n))).unwrap_or(0));
        }
    }
    w
}

/// `text` with every line longer than [`limit`] wrapped at spaces (continuations indented by
/// two); a single word longer than the width (an id, a URL) stays whole.
#[must_use]
pub fn wrap(text: &str) -> String {
    wrap_for(text, limit())
}

/// [`wrap`] for `width` characters (`None`: unchanged but for trailing spaces).
#[must_use]
pub fn wrap_for(text: &str, width: Option<u16>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim_end();
        match width {
            Some(w) if textwrap::core::display_width(line) > usize::from(w) => {
                let indent: String = line.chars().take_while(|c| *c == ' ').collect();
                let rest = format!("{indent}  ");
                let opts = textwrap::Options::new(usize::from(w))
                    .initial_indent(&indent)
                    .subsequent_indent(&rest)
                    .break_words(false)
                    .word_separator(textwrap::WordSeparator::AsciiSpace)
                    .word_splitter(textwrap::WordSplitter::NoHyphenation);
                for part in textwrap::wrap(line.trim_start(), &opts) {
                    out.push_str(part.trim_end());
                    out.push('\n');
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "j97b2f6m1k4n8p3r5t7v9x0z";

    fn fits() -> Vec<Fit> {
        vec![Fit::Whole, Fit::Wrap { rank: 0, min: 8 }, Fit::Wrap { rank: 2, min: 10 }, Fit::Optional { rank: 1 }]
    }

    fn sample() -> Columns {
        let mut t = Columns::new(&[
            ("SUBSCRIPTION", Fit::Whole),
            ("LABEL", Fit::Wrap { rank: 0, min: 8 }),
            ("EXPIRES (UTC)", Fit::Wrap { rank: 2, min: 10 }),
            ("NOTE", Fit::Optional { rank: 1 }),
        ]);
        for _ in 0..3 {
            t.row(vec![
                ID.into(),
                "12001 - NL - Private, a long label for a subscription".into(),
                "2026-11-30T13:35:12Z".into(),
                "renew before the end of the month, the customer asked".into(),
            ]);
        }
        t
    }

    fn longest(s: &str) -> usize {
        s.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn without_a_limit_rows_stay_whole_and_lines_end_without_spaces() {
        let out = sample().render_for(None);
        assert_eq!(out.lines().count(), 4, "{out}");
        assert!(out.lines().all(|l| !l.ends_with(' ')), "{out:?}");
        assert!(longest(&out) > 100);
    }

    #[test]
    fn narrow_tables_wrap_the_least_useful_columns_first_and_keep_ids_whole() {
        for width in [100, 80, 50] {
            let out = sample().render_for(Some(width));
            assert!(longest(&out) <= usize::from(width), "{width}:\n{out}");
            assert!(out.lines().all(|l| !l.ends_with(' ')), "{out:?}");
            assert_eq!(out.matches(ID).count(), 3, "{width}:\n{out}");
        }
        // At 100, the expiry keeps its line; the label and note wrap.
        let out = sample().render_for(Some(100));
        assert_eq!(out.matches("2026-11-30T13:35:12Z").count(), 3, "{out}");
    }

    #[test]
    fn optional_columns_go_at_their_turn_and_free_room_for_the_rest() {
        let out = sample().render_for(Some(50));
        assert!(!out.contains("NOTE"), "{out}");
        assert_eq!(widths(&[24, 50, 20, 50], &fits(), 60), vec![Some(24), Some(10), Some(20), None]);
        assert_eq!(widths(&[24, 50, 20, 50], &fits(), 50), vec![Some(24), Some(8), Some(12), None]);
        assert_eq!(widths(&[24, 50, 20, 50], &fits(), 200), vec![Some(24), Some(50), Some(20), Some(50)]);
    }

    #[test]
    fn prose_wraps_at_spaces_and_keeps_long_words() {
        let text = format!("{} subscriptions: due, renewable, need attention; ids {ID}, {ID}\nshort  \n", "10");
        let out = wrap_for(&text, Some(40));
        assert!(out.lines().all(|l| l.chars().count() <= 40 && !l.ends_with(' ')), "{out}");
        assert_eq!(out.matches(ID).count(), 2);
        assert!(out.ends_with("short\n"));
        assert_eq!(wrap_for("a b  \n", None), "a b\n");
    }
}
