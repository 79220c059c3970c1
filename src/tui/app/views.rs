//! The list models: each list pane's rows in view (filtered, sorted), kept in order.

use super::*;

impl App {
    /// Recompute the pane orders if data, filter or sort changed since the last time.
    pub(super) fn rebuild_views(&mut self) {
        let key = OrderKey {
            data_gen: self.data.generation(),
            vm: (
                self.vm_list.filter.clone(),
                self.vm_sort,
                self.vm_list.sort_desc,
            ),
            image: (
                self.image_list.filter.clone(),
                self.image_sort,
                self.image_list.sort_desc,
            ),
        };
        if self.order_key.as_ref() == Some(&key) {
            return;
        }
        self.vm_order = self.compute_vm_order();
        self.image_order = self.compute_image_order();
        self.order_key = Some(key);
    }

    pub(super) fn compute_vm_order(&self) -> Vec<usize> {
        let f = self.vm_list.filter.to_lowercase();
        let mut v: Vec<(usize, &VmRow)> = self
            .data
            .vms
            .iter()
            .enumerate()
            .filter(|(_, r)| f.is_empty() || r.shown_text().to_lowercase().contains(&f))
            .collect();
        let key = Some(self.vm_sort);
        v.sort_by(|(_, a), (_, b)| {
            let o = match key {
                Some(VmCol::Status) => a.info.status.as_str().cmp(b.info.status.as_str()),
                Some(VmCol::Backend) => a.info.backend.cmp(&b.info.backend),
                Some(VmCol::Preset) => a.info.preset.cmp(&b.info.preset),
                Some(VmCol::Ip) => a.info.ip.cmp(&b.info.ip),
                Some(VmCol::Ssh) => a.info.ssh_port.cmp(&b.info.ssh_port),
                Some(VmCol::Net) => a.net_cell().cmp(&b.net_cell()),
                Some(VmCol::Egress) => {
                    let bytes = |r: &VmRow| r.net.as_ref().and_then(|n| n.egress_bytes);
                    bytes(a).cmp(&bytes(b))
                }
                Some(VmCol::Pid) => a.info.pid.cmp(&b.info.pid),
                Some(VmCol::Uptime) => a.uptime_secs.cmp(&b.uptime_secs),
                Some(VmCol::Cpu) => a
                    .cpu_pct
                    .partial_cmp(&b.cpu_pct)
                    .unwrap_or(std::cmp::Ordering::Equal),
                Some(VmCol::Rss) => a.rss_bytes.cmp(&b.rss_bytes),
                Some(VmCol::Created) => a.info.created_at.cmp(&b.info.created_at),
                // ID: store order (oldest first)
                Some(VmCol::Id) | None => std::cmp::Ordering::Equal,
            };
            let o = o.then_with(|| a.info.created_at.cmp(&b.info.created_at));
            if self.vm_list.sort_desc {
                o.reverse()
            } else {
                o
            }
        });
        v.into_iter().map(|(i, _)| i).collect()
    }

    pub(super) fn compute_image_order(&self) -> Vec<usize> {
        let f = self.image_list.filter.to_lowercase();
        let mut v: Vec<(usize, &ImageRow)> = self
            .data
            .images
            .iter()
            .enumerate()
            .filter(|(_, r)| f.is_empty() || r.shown_text().to_lowercase().contains(&f))
            .collect();
        let key = Some(self.image_sort);
        v.sort_by(|(_, a), (_, b)| {
            let o = match key {
                Some(ImageCol::Image) => a.name.cmp(&b.name),
                Some(ImageCol::Arch) => a.arch.cmp(&b.arch),
                Some(ImageCol::Vmm) => a.vmm.cmp(&b.vmm),
                Some(ImageCol::Size) => a.size_bytes.cmp(&b.size_bytes),
                Some(ImageCol::State) => a.state().cmp(&b.state()),
                // VERSION (and the CLI-only columns, which the pane does not show)
                _ => a.version.cmp(&b.version),
            }
            .then_with(|| a.name.cmp(&b.name));
            if self.image_list.sort_desc {
                o.reverse()
            } else {
                o
            }
        });
        v.into_iter().map(|(i, _)| i).collect()
    }
}
