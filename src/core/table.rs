//! The columns of the VM and image tables, defined once for both faces: the dashboard's
//! VMs and Images panes (which sort by them and drop the least important ones when the
//! terminal is narrow) and the CLI's `sandbox list` / `image ls` text tables.
//!
//! A [`Column`] is what a table knows about one column: which field it shows (its id,
//! also the sort key), its title, how wide it may be, and how important it is. A view is
//! an ordered slice of columns ([`VM_PANE`], [`VM_LIST`], [`IMAGE_PANE`], [`IMAGE_LS`]);
//! [`fit`] picks the columns of a view that fit a width, and [`text_table`] lays rows out
//! the way the CLI prints them.

/// A VM table column: the field it shows, and the key the dashboard sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmCol {
    #[default]
    Id,
    Status,
    Backend,
    Preset,
    Ip,
    Ssh,
    /// The egress policy (`open`, `off`, `restricted`).
    Net,
    /// Bytes the guard let out.
    Egress,
    Pid,
    Uptime,
    Cpu,
    Rss,
    Created,
    /// The snapshot a clone (a warm start's included) was made from.
    Template,
}

/// An image table column: the field it shows, and the key the dashboard sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageCol {
    #[default]
    Version,
    /// The cache's directory name (the dashboard's IMAGE).
    Image,
    Preset,
    Arch,
    Vmm,
    Os,
    Compressed,
    Unpacked,
    OnDisk,
    /// Bytes on disk, as the dashboard shows them (SIZE).
    Size,
    /// `current`, `stale` or `kept: …`, with the VMs using it (the dashboard's STATE).
    State,
    /// `current` / `stale`, `(incomplete)` (the CLI's STATUS).
    Status,
    InUseBy,
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column<K> {
    /// The field shown, and the sort key.
    pub id: K,
    pub title: &'static str,
    /// Width in cells: content is measured and clamped to `min..=max` (equal for a
    /// fixed-width column).
    pub min: u16,
    pub max: u16,
    /// Whether the column takes the slack of a wide table.
    pub grow: bool,
    /// Lower is more important: when a table is narrow, columns are kept in this order
    /// while they fit (ties by position).
    pub priority: u8,
}

impl<K> Column<K> {
    const fn new(id: K, title: &'static str, width: u16, priority: u8) -> Self {
        Column {
            id,
            title,
            min: width,
            max: width,
            grow: false,
            priority,
        }
    }

    const fn between(mut self, min: u16, max: u16) -> Self {
        self.min = min;
        self.max = max;
        self
    }

    const fn grow(mut self) -> Self {
        self.grow = true;
        self
    }

    /// The width for content `content` cells wide.
    pub fn width_for(&self, content: usize) -> u16 {
        u16::try_from(content)
            .unwrap_or(u16::MAX)
            .clamp(self.min, self.max)
    }
}

/// The VMs pane, in display order. The network columns rank after the PID and before the
/// backend and the `/proc` figures: at 80 columns they are left out (the layout stays as it
/// was), from 120 they show and RSS is the one left out. TEMPLATE (the snapshot a clone
/// came from) is the least important: it shows where everything else fits.
pub const VM_PANE: [Column<VmCol>; 14] = [
    Column::new(VmCol::Id, "ID", 12, 0).between(12, 40),
    Column::new(VmCol::Status, "STATUS", 15, 1),
    Column::new(VmCol::Backend, "BACKEND", 11, 9),
    Column::new(VmCol::Preset, "PRESET", 11, 4),
    // A warm start's template is `warm-<preset>-<8 hex>-<8 hex>`.
    Column::new(VmCol::Template, "TEMPLATE", 8, 13).between(8, 40),
    Column::new(VmCol::Ip, "IP", 14, 2),
    Column::new(VmCol::Ssh, "SSH", 5, 3),
    Column::new(VmCol::Net, "NET", 10, 6),
    Column::new(VmCol::Egress, "EGRESS", 8, 8),
    Column::new(VmCol::Pid, "PID", 7, 5),
    Column::new(VmCol::Uptime, "UPTIME", 7, 7),
    Column::new(VmCol::Cpu, "CPU%", 5, 10),
    Column::new(VmCol::Rss, "RSS", 7, 11),
    // Only where everything else fits (a wide terminal): when each VM was created.
    Column::new(VmCol::Created, "CREATED", 25, 12),
];

/// `smolvm sandbox list`, in display order (widths come from the content).
pub const VM_LIST: [Column<VmCol>; 8] = [
    VM_PANE[0],
    VM_PANE[1],
    VM_PANE[2],
    VM_PANE[3],
    VM_PANE[4],
    VM_PANE[5],
    VM_PANE[9],
    Column::new(VmCol::Created, "CREATED", 0, 12),
];

/// The Images pane, in display order.
/// STATE comes right after IMAGE in importance (what a cache is, kept or stale, is what the
/// pane is for), at least 16 wide, and takes the slack; ARCH and VMM are as wide as what
/// they show.
pub const IMAGE_PANE: [Column<ImageCol>; 6] = [
    Column::new(ImageCol::Version, "VERSION", 9, 2),
    Column::new(ImageCol::Image, "IMAGE", 16, 0).between(16, 44),
    Column::new(ImageCol::Arch, "ARCH", 5, 5).between(5, 6),
    Column::new(ImageCol::Vmm, "VMM", 4, 4).between(4, 11),
    Column::new(ImageCol::Size, "SIZE", 8, 3),
    Column::new(ImageCol::State, "STATE", 16, 1).grow(),
];

/// `smolvm image ls`, in display order (widths come from the content).
pub const IMAGE_LS: [Column<ImageCol>; 10] = [
    IMAGE_PANE[0],
    Column::new(ImageCol::Preset, "PRESET", 0, 1),
    IMAGE_PANE[2],
    IMAGE_PANE[3],
    Column::new(ImageCol::Os, "OS", 0, 6),
    Column::new(ImageCol::Compressed, "COMPRESSED", 0, 7),
    Column::new(ImageCol::Unpacked, "UNPACKED", 0, 8),
    Column::new(ImageCol::OnDisk, "ON DISK", 0, 2),
    Column::new(ImageCol::Status, "STATUS", 0, 3),
    Column::new(ImageCol::InUseBy, "IN USE BY", 0, 9),
];

/// The titles of a view, in order.
pub fn titles<K, const N: usize>(cols: &[Column<K>; N]) -> [&'static str; N] {
    std::array::from_fn(|i| cols[i].title)
}

/// Which columns (indices into `cols`) fit in `avail` cells, given each one's width
/// (`widths[i]`, one cell between columns): columns are taken by priority while they fit
/// (a column too wide is skipped, a narrower less important one may still fit) and
/// returned in display order. The most important column is always kept.
pub fn fit<K>(cols: &[Column<K>], widths: &[u16], avail: u16) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|&i| (cols[i].priority, i));
    let mut used = 0u16;
    let mut chosen = Vec::new();
    for (n, i) in order.into_iter().enumerate() {
        let need = widths[i].saturating_add(u16::from(!chosen.is_empty()));
        if n == 0 || used.saturating_add(need) <= avail {
            used = used.saturating_add(need);
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    chosen
}

/// A plain-text table as the CLI prints it: the header and each row, every cell padded to
/// its column's widest cell, two spaces between columns, trailing blanks trimmed.
pub fn text_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Vec<String> {
    let mut w = header.map(|h| h.chars().count());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let fmt = |cells: [&str; N]| {
        cells
            .iter()
            .zip(&w)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    std::iter::once(fmt(header))
        .chain(
            rows.iter()
                .map(|r| fmt(std::array::from_fn(|i| r[i].as_str()))),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(priorities: &[u8]) -> Vec<Column<usize>> {
        priorities
            .iter()
            .enumerate()
            .map(|(i, &p)| Column::new(i, "X", 0, p))
            .collect()
    }

    #[test]
    fn fit_drops_the_least_important_columns_first() {
        // Display order 0..4; importance 0, 2, 1, 3.
        let c = cols(&[0, 2, 1, 3]);
        let w = [10, 5, 5, 5];
        assert_eq!(fit(&c, &w, 100), vec![0, 1, 2, 3]);
        assert_eq!(fit(&c, &w, 22), vec![0, 1, 2]);
        assert_eq!(fit(&c, &w, 21), vec![0, 2]);
        assert_eq!(fit(&c, &w, 16), vec![0, 2]);
        assert_eq!(fit(&c, &w, 15), vec![0]);
        // The most important column stays even when nothing fits.
        assert_eq!(fit(&c, &w, 3), vec![0]);
        assert_eq!(fit(&c, &w, 0), vec![0]);
    }

    #[test]
    fn fit_skips_a_wide_column_for_a_narrower_less_important_one() {
        let c = cols(&[0, 1, 2]);
        assert_eq!(fit(&c, &[4, 20, 3], 10), vec![0, 2]);
        // Ties keep display order.
        let c = cols(&[1, 0, 0]);
        assert_eq!(fit(&c, &[5, 5, 5], 11), vec![1, 2]);
    }

    #[test]
    fn the_panes_keep_their_80_column_layout() {
        // The 80-column dashboard: panes are 78 cells inside their borders.
        let w: Vec<u16> = VM_PANE.iter().map(|c| c.width_for(14)).collect();
        let shown: Vec<&str> = fit(&VM_PANE, &w, 78)
            .into_iter()
            .map(|i| VM_PANE[i].title)
            .collect();
        assert_eq!(
            shown,
            ["ID", "STATUS", "PRESET", "IP", "SSH", "PID", "CPU%"]
        );
        // From 120 columns (118 inside) the network columns show; RSS is left out.
        let shown: Vec<&str> = fit(&VM_PANE, &w, 118)
            .into_iter()
            .map(|i| VM_PANE[i].title)
            .collect();
        assert_eq!(
            shown,
            [
                "ID", "STATUS", "BACKEND", "PRESET", "IP", "SSH", "NET", "EGRESS", "PID", "UPTIME",
                "CPU%"
            ]
        );
        // Everything but TEMPLATE at 160, and it too where there is room.
        let shown = fit(&VM_PANE, &w, 158);
        assert_eq!(shown.len(), VM_PANE.len() - 1);
        assert!(!shown.iter().any(|&i| VM_PANE[i].id == VmCol::Template));
        assert_eq!(fit(&VM_PANE, &w, 178).len(), VM_PANE.len());
        let w: Vec<u16> = IMAGE_PANE.iter().map(|c| c.width_for(30)).collect();
        let shown: Vec<&str> = fit(&IMAGE_PANE, &w, 78)
            .into_iter()
            .map(|i| IMAGE_PANE[i].title)
            .collect();
        assert_eq!(shown, ["VERSION", "IMAGE", "VMM", "SIZE", "STATE"]);
    }

    #[test]
    fn the_cli_views_share_the_pane_titles() {
        assert_eq!(
            titles(&VM_LIST),
            ["ID", "STATUS", "BACKEND", "PRESET", "TEMPLATE", "IP", "PID", "CREATED"]
        );
        assert_eq!(
            VM_LIST.map(|c| c.id),
            [
                VmCol::Id,
                VmCol::Status,
                VmCol::Backend,
                VmCol::Preset,
                VmCol::Template,
                VmCol::Ip,
                VmCol::Pid,
                VmCol::Created
            ]
        );
        assert_eq!(titles(&IMAGE_LS)[..4], ["VERSION", "PRESET", "ARCH", "VMM"]);
    }

    #[test]
    fn width_is_clamped_to_the_column_range() {
        assert_eq!(VM_PANE[0].width_for(3), 12);
        assert_eq!(VM_PANE[0].width_for(30), 30);
        assert_eq!(VM_PANE[0].width_for(300), 40);
        assert_eq!(VM_PANE[1].width_for(40), 15);
    }

    #[test]
    fn text_table_pads_to_the_widest_cell_and_trims() {
        let rows = [
            ["ab".to_string(), "-".to_string()],
            ["é".to_string(), "x".to_string()],
        ];
        assert_eq!(
            text_table(["ID", "STATUS"], &rows),
            ["ID  STATUS", "ab  -", "é   x"]
        );
    }
}
