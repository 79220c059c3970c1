//! A table pane's model and drawing, generic over its column enum (bottom's
//! `DataToCell`): a row type says, per column, the text of its cell, how that cell is
//! styled, how wide its content is and how two rows compare; the column's title, width
//! range and importance are core's ([`crate::core::table::Column`], shared with the CLI's
//! tables). [`TableList`] holds what the user did to the list (selection, filter, marks,
//! [`Sort`]) and the rows' order in view; [`render`] draws it.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use crate::core::table::{self, Column};
use crate::tui::layout::scroll_offset;
use crate::tui::theme::Theme;

/// A column enum of a pane: its columns in display order (the first is the default sort).
pub trait TableColumn: Copy + Eq + std::fmt::Debug + 'static {
    const COLUMNS: &'static [Column<Self>];

    /// The column's layout (title, widths, importance).
    fn column(self) -> &'static Column<Self> {
        Self::COLUMNS
            .iter()
            .find(|c| c.id == self)
            .unwrap_or(&Self::COLUMNS[0])
    }
}

impl TableColumn for table::VmCol {
    const COLUMNS: &'static [Column<Self>] = &table::VM_PANE;
}

impl TableColumn for table::ImageCol {
    const COLUMNS: &'static [Column<Self>] = &table::IMAGE_PANE;
}

/// How a row shows and sorts in a table of columns `C`.
pub trait DataToCell<C: TableColumn> {
    /// The cell's text, as shown (the `/` filter matches it).
    fn cell_text(&self, col: C) -> String;
    /// The cell's own style (none: the row's).
    fn cell_style(&self, _col: C, _theme: &Theme) -> Option<Style> {
        None
    }
    /// How many cells the content of `col` needs (a column with a width range is as wide
    /// as its widest row); `marking`: marks are shown in this table.
    fn content_width(&self, col: C, _marking: bool) -> usize {
        self.cell_text(col).chars().count()
    }
    /// Row order by `col`, ascending.
    fn compare(&self, other: &Self, col: C) -> Ordering;
    /// Order among rows equal by the sort column (ascending; reversed with it).
    fn tiebreak(&self, other: &Self) -> Ordering;
    /// The row's key for marks.
    fn mark_key(&self) -> String;
    /// The column that shows the mark (`● `).
    const MARK_COLUMN: C;
    /// The row's text for the `/` filter: every column's cell, tab-separated (a match
    /// never spans two cells).
    fn filter_text(&self) -> String {
        C::COLUMNS
            .iter()
            .map(|c| self.cell_text(c.id))
            .collect::<Vec<_>>()
            .join("\t")
    }
}

/// The column a table sorts by, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<C> {
    pub col: C,
    pub desc: bool,
}

impl<C: TableColumn> Default for Sort<C> {
    fn default() -> Self {
        Sort {
            col: C::COLUMNS[0].id,
            desc: false,
        }
    }
}

impl<C: TableColumn> Sort<C> {
    /// Sort by the next column (after the last, the first).
    pub fn next(&mut self) {
        let cols = C::COLUMNS;
        let at = cols.iter().position(|c| c.id == self.col).unwrap_or(0);
        self.col = cols[(at + 1) % cols.len()].id;
    }

    pub fn reverse(&mut self) {
        self.desc = !self.desc;
    }

    /// The first column, ascending.
    pub fn is_default(&self) -> bool {
        *self == Sort::default()
    }

    /// `sort STATUS↑`, for the pane's title.
    pub fn title(&self) -> String {
        format!(
            "sort {}{}",
            self.col.column().title,
            if self.desc { "↓" } else { "↑" }
        )
    }

    pub fn cmp<T: DataToCell<C>>(&self, a: &T, b: &T) -> Ordering {
        let o = a.compare(b, self.col).then_with(|| a.tiebreak(b));
        if self.desc {
            o.reverse()
        } else {
            o
        }
    }
}

/// A table pane's list: selection, filter, marks and sort, and the rows' order in view
/// (indices into the data's rows after filter and sort), rebuilt only when the data,
/// the filter or the sort change — a key press on 10,000 rows must not re-sort them.
#[derive(Debug, Clone)]
pub struct TableList<C> {
    pub selected: usize,
    pub filter: String,
    pub sort: Sort<C>,
    pub marks: BTreeSet<String>,
    order: Vec<usize>,
    order_key: Option<(u64, String, Sort<C>)>,
}

impl<C: TableColumn> Default for TableList<C> {
    fn default() -> Self {
        TableList {
            selected: 0,
            filter: String::new(),
            sort: Sort::default(),
            marks: BTreeSet::new(),
            order: Vec::new(),
            order_key: None,
        }
    }
}

/// Two lists are alike when the user's view of them is (the order is derived).
impl<C: PartialEq> PartialEq for TableList<C> {
    fn eq(&self, o: &Self) -> bool {
        (self.selected, &self.filter, &self.sort, &self.marks)
            == (o.selected, &o.filter, &o.sort, &o.marks)
    }
}

impl<C: Eq> Eq for TableList<C> {}

impl<C: TableColumn> TableList<C> {
    /// Recompute the order of `rows` (data generation `generation`) if the data, the
    /// filter or the sort changed since the last time.
    pub fn rebuild<T: DataToCell<C>>(&mut self, rows: &[T], generation: u64) {
        let key = (generation, self.filter.clone(), self.sort);
        if self.order_key.as_ref() == Some(&key) {
            return;
        }
        self.order = order(rows, &self.filter, self.sort);
        self.order_key = Some(key);
    }

    /// The rows in view, in order.
    pub fn view<'a, T>(&self, rows: &'a [T]) -> Vec<&'a T> {
        self.order.iter().filter_map(|&i| rows.get(i)).collect()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The selected row.
    pub fn selected<'a, T>(&self, rows: &'a [T]) -> Option<&'a T> {
        self.order.get(self.selected).and_then(|&i| rows.get(i))
    }

    /// The rows an action applies to: the marked ones (in view order), else the selected
    /// one.
    pub fn targets<'a, T: DataToCell<C>>(&self, rows: &'a [T]) -> Vec<&'a T> {
        if !self.marks.is_empty() {
            return self
                .view(rows)
                .into_iter()
                .filter(|r| self.marks.contains(&r.mark_key()))
                .collect();
        }
        self.selected(rows).into_iter().collect()
    }

    /// Mark the selected row, or unmark it; whether there was one.
    pub fn toggle_mark<T: DataToCell<C>>(&mut self, rows: &[T]) -> bool {
        let Some(key) = self.selected(rows).map(DataToCell::mark_key) else {
            return false;
        };
        if !self.marks.remove(&key) {
            self.marks.insert(key);
        }
        true
    }

    /// Select row `key` if it is in view; whether it is.
    pub fn select_key<T: DataToCell<C>>(&mut self, rows: &[T], key: &str) -> bool {
        match self.view(rows).iter().position(|r| r.mark_key() == key) {
            Some(i) => {
                self.selected = i;
                true
            }
            None => false,
        }
    }

    /// Keep the selection in the view and the marks on rows that exist.
    pub fn clamp<T: DataToCell<C>>(&mut self, rows: &[T]) {
        self.selected = self.selected.min(self.order.len().saturating_sub(1));
        if !self.marks.is_empty() {
            let keys: BTreeSet<String> = rows.iter().map(DataToCell::mark_key).collect();
            self.marks.retain(|m| keys.contains(m));
        }
    }

    /// Moving in the list: whether `a` was a move.
    pub fn move_by(&mut self, a: crate::tui::keymap::Action, page: usize) -> bool {
        let len = self.len();
        super::move_in(&mut self.selected, len, a, page)
    }

    /// Mark (or unmark) the selected row and go to the next.
    pub fn mark_and_step<T: DataToCell<C>>(&mut self, rows: &[T]) {
        if self.toggle_mark(rows) {
            let len = self.len();
            super::step(&mut self.selected, len, 1);
        }
    }

    /// The filter typed (`live`: while typing, the selection goes back to the top).
    pub fn set_filter(&mut self, text: String, live: bool) {
        self.filter = text;
        if live {
            self.selected = 0;
        }
    }

    /// Esc: the marks go first, then the filter.
    pub fn escape(&mut self) {
        if !self.marks.is_empty() {
            self.marks.clear();
        } else {
            self.filter.clear();
        }
    }

    /// The title's suffix: ` /filter · 2 marked · sort STATUS↑`.
    pub fn title_suffix(&self) -> String {
        let mut s = String::new();
        if !self.filter.is_empty() {
            s.push_str(&format!(" /{}", self.filter));
        }
        if !self.marks.is_empty() {
            s.push_str(&format!(" · {} marked", self.marks.len()));
        }
        if !self.sort.is_default() {
            s.push_str(&format!(" · {}", self.sort.title()));
        }
        s
    }
}

/// The indices of `rows` that match `filter` (case-insensitive, in any cell), sorted.
pub fn order<C: TableColumn, T: DataToCell<C>>(
    rows: &[T],
    filter: &str,
    sort: Sort<C>,
) -> Vec<usize> {
    let f = filter.to_lowercase();
    let mut v: Vec<(usize, &T)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| f.is_empty() || r.filter_text().to_lowercase().contains(&f))
        .collect();
    v.sort_by(|(_, a), (_, b)| sort.cmp(*a, *b));
    v.into_iter().map(|(i, _)| i).collect()
}

/// Draw `list`'s rows of `rows` in `blk` over `r`: the columns that fit (by importance),
/// each as wide as its content within its range, the selected row highlighted (bold when
/// the pane is not focused), marked rows marked.
pub fn render<C: TableColumn, T: DataToCell<C>>(
    f: &mut Frame,
    r: Rect,
    blk: Block<'_>,
    list: &TableList<C>,
    rows: &[T],
    focused: bool,
    theme: &Theme,
) {
    let view = list.view(rows);
    let cols = C::COLUMNS;
    let marking = !list.marks.is_empty();
    let w: Vec<u16> = cols
        .iter()
        .map(|c| {
            if c.min == c.max {
                return c.min;
            }
            let content = view
                .iter()
                .map(|row| row.content_width(c.id, marking))
                .max()
                .unwrap_or(0);
            c.width_for(content)
        })
        .collect();
    let avail = r.width.saturating_sub(2);
    let shown = table::fit(cols, &w, avail);
    // Each shown column's width as drawn: a growing column takes the slack. A cell wider
    // than its column is cut with `…` (never mid-word without a sign).
    let mut drawn: Vec<u16> = w.clone();
    let used: u16 = shown
        .iter()
        .map(|&c| w[c])
        .sum::<u16>()
        .saturating_add(u16::try_from(shown.len().saturating_sub(1)).unwrap_or(u16::MAX));
    if let Some(&g) = shown.iter().find(|&&c| cols[c].grow) {
        drawn[g] = w[g].saturating_add(avail.saturating_sub(used));
    }
    let visible = usize::from(r.height.saturating_sub(3));
    let offset = scroll_offset(list.selected, visible);
    let body: Vec<Row> = view
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, row)| {
            let marked = marking && list.marks.contains(&row.mark_key());
            let cells: Vec<Cell> = shown
                .iter()
                .map(|&c| {
                    let col = cols[c].id;
                    let mut text = row.cell_text(col);
                    if marked && col == T::MARK_COLUMN {
                        text = format!("● {text}");
                    }
                    let text = cut(text, usize::from(drawn[c]));
                    match row.cell_style(col, theme) {
                        Some(s) => Cell::from(Span::styled(text, s)),
                        None => Cell::from(text),
                    }
                })
                .collect();
            let mut out = Row::new(cells);
            if marked {
                out = out.style(theme.marked());
            }
            if i == list.selected && focused {
                out = out.style(theme.selected());
            } else if i == list.selected {
                out = out.style(Style::new().add_modifier(Modifier::BOLD));
            }
            out
        })
        .collect();
    let widths: Vec<Constraint> = shown
        .iter()
        .map(|&c| {
            if cols[c].grow {
                Constraint::Min(drawn[c])
            } else {
                Constraint::Length(drawn[c])
            }
        })
        .collect();
    let head = Row::new(
        shown
            .iter()
            .map(|&c| Cell::from(cols[c].title))
            .collect::<Vec<_>>(),
    )
    .style(theme.muted());
    f.render_widget(
        Table::new(body, widths)
            .header(head)
            .block(blk)
            .column_spacing(1),
        r,
    );
}

/// `text` in at most `width` cells: cut with `…` when longer.
pub fn cut(text: String, width: usize) -> String {
    if text.chars().count() <= width {
        return text;
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Col {
        Name,
        Size,
    }

    const fn col(id: Col, title: &'static str, min: u16, max: u16) -> Column<Col> {
        Column {
            id,
            title,
            min,
            max,
            grow: false,
            priority: 0,
        }
    }

    impl TableColumn for Col {
        const COLUMNS: &'static [Column<Self>] =
            &[col(Col::Name, "NAME", 4, 10), col(Col::Size, "SIZE", 5, 5)];
    }

    #[derive(Debug, Clone)]
    struct R(&'static str, u64);

    impl DataToCell<Col> for R {
        const MARK_COLUMN: Col = Col::Name;
        fn cell_text(&self, col: Col) -> String {
            match col {
                Col::Name => self.0.into(),
                Col::Size => format!("{}k", self.1),
            }
        }
        fn compare(&self, o: &Self, col: Col) -> Ordering {
            match col {
                Col::Name => Ordering::Equal,
                Col::Size => self.1.cmp(&o.1),
            }
        }
        fn tiebreak(&self, o: &Self) -> Ordering {
            self.0.cmp(o.0)
        }
        fn mark_key(&self) -> String {
            self.0.into()
        }
    }

    fn rows() -> Vec<R> {
        vec![R("cc", 1), R("aa", 3), R("bb", 2), R("dd", 3)]
    }

    #[test]
    fn the_sort_steps_through_the_columns_by_value_and_wraps() {
        let mut s = Sort::<Col>::default();
        assert_eq!((s.col, s.desc), (Col::Name, false));
        assert!(s.is_default());
        s.next();
        assert_eq!(s.col, Col::Size);
        assert_eq!(s.title(), "sort SIZE↑");
        s.reverse();
        assert_eq!(s.title(), "sort SIZE↓");
        s.next();
        assert_eq!(s.col, Col::Name, "after the last column, the first");
        assert!(!s.is_default(), "still reversed");
    }

    #[test]
    fn rows_sort_by_the_columns_comparison_then_the_tiebreak_and_reverse_whole() {
        let r = rows();
        let by = |col, desc| {
            order(&r, "", Sort { col, desc })
                .into_iter()
                .map(|i| r[i].0)
                .collect::<Vec<_>>()
        };
        // NAME compares equal: the tiebreak orders.
        assert_eq!(by(Col::Name, false), ["aa", "bb", "cc", "dd"]);
        assert_eq!(by(Col::Size, false), ["cc", "bb", "aa", "dd"]);
        assert_eq!(by(Col::Size, true), ["dd", "aa", "bb", "cc"]);
    }

    #[test]
    fn the_filter_matches_any_cell_but_never_across_two() {
        let r = rows();
        assert_eq!(order(&r, "3K", Sort::default()), [1, 3]);
        assert_eq!(order(&r, "B", Sort::default()), [2]);
        // `cc\t1k`: no match spans the cells.
        assert!(order(&r, "c1", Sort::default()).is_empty());
    }

    #[test]
    fn the_order_is_rebuilt_only_when_data_filter_or_sort_change() {
        let mut l = TableList::<Col>::default();
        let r = rows();
        l.rebuild(&r, 1);
        assert_eq!(l.len(), 4);
        // Same generation: the cached order stands (a key press must not re-sort).
        l.rebuild(&r[..1], 1);
        assert_eq!(l.len(), 4);
        l.rebuild(&r[..1], 2);
        assert_eq!(l.len(), 1);
        l.filter = "zz".into();
        l.rebuild(&r, 2);
        assert!(l.is_empty());
    }

    #[test]
    fn marks_choose_the_targets_and_esc_clears_marks_then_the_filter() {
        let r = rows();
        let mut l = TableList::<Col>::default();
        l.sort.next();
        l.rebuild(&r, 1);
        assert_eq!(l.selected(&r).map(|x| x.0), Some("cc"));
        assert_eq!(l.targets(&r).len(), 1);
        l.mark_and_step(&r);
        l.mark_and_step(&r);
        assert_eq!(l.selected, 2);
        let t: Vec<_> = l.targets(&r).iter().map(|x| x.0).collect();
        assert_eq!(t, ["cc", "bb"]);
        assert!(l.title_suffix().contains("2 marked · sort SIZE↑"));
        l.filter = "x".into();
        l.escape();
        assert!(l.marks.is_empty());
        assert_eq!(l.filter, "x");
        l.escape();
        assert_eq!(l.filter, "");
        // Marks on rows that are gone go.
        l.mark_and_step(&r);
        l.clamp(&r[..0]);
        assert!(l.marks.is_empty());
    }

    fn draw(l: &TableList<Col>, r: &[R], focused: bool) -> ratatui::buffer::Buffer {
        let mut term = Terminal::new(TestBackend::new(20, 6)).unwrap();
        let theme = Theme::defaults(false);
        term.draw(|f| render(f, f.area(), Block::bordered(), l, r, focused, &theme))
            .unwrap();
        term.backend().buffer().clone()
    }

    /// The cells come from the columns: titles, content-wide ranged columns, the mark in
    /// the mark column; the selected row stands out, bold in a pane without focus (the
    /// Images pane used to show no selection then, unlike the VMs pane).
    #[test]
    fn the_table_draws_cells_from_columns_and_shows_the_selection_unfocused() {
        let r = rows();
        let mut l = TableList::<Col>::default();
        l.rebuild(&r, 1);
        l.marks.insert("aa".into());
        let buf = draw(&l, &r, false);
        let line = |y: u16| {
            (0..20)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        };
        assert_eq!(line(1), "│NAME SIZE         │");
        assert_eq!(line(2), "│● aa 3k           │");
        assert!(buf[(1, 2)].modifier.contains(Modifier::BOLD));
        assert!(!buf[(1, 3)].modifier.contains(Modifier::BOLD));
    }
}
