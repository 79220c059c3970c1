//! The little of DNS's wire format (RFC 1035) the sandboxes' resolver needs: a query's
//! question, a refusal, and the IPv4 addresses (with TTLs) of an answer. Every read is
//! bounds-checked: a guest's bytes never panic it.

use std::net::Ipv4Addr;

/// A query's first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// Lowercase, dot-separated, no trailing dot.
    pub name: String,
    pub qtype: u16,
    /// Where the question section ends in the message.
    pub end: usize,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Read a (possibly compressed) name at `i`; the name and the offset after it in place.
fn read_name(b: &[u8], mut i: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    let mut total = 0usize;
    loop {
        let len = *b.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xC0 == 0xC0 {
            let ptr = (u16_at(b, i)? & 0x3FFF) as usize;
            if end.is_none() {
                end = Some(i + 2);
            }
            jumps += 1;
            if jumps > 16 || ptr >= b.len() {
                return None;
            }
            i = ptr;
            continue;
        }
        if len & 0xC0 != 0 || len > 63 {
            return None;
        }
        let label = b.get(i + 1..i + 1 + len)?;
        total += len + 1;
        if total > 255 {
            return None;
        }
        labels.push(
            label
                .iter()
                .map(|c| (*c as char).to_ascii_lowercase())
                .collect(),
        );
        i += 1 + len;
    }
    Some((labels.join("."), end.unwrap_or(i)))
}

/// The question of a standard query (QR 0, opcode 0, one question); `None` for anything
/// else.
pub fn parse_query(b: &[u8]) -> Option<Question> {
    let id = u16_at(b, 0)?;
    let flags = u16_at(b, 2)?;
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xF;
    if qr || opcode != 0 || u16_at(b, 4)? != 1 {
        return None;
    }
    let (name, i) = read_name(b, 12)?;
    let qtype = u16_at(b, i)?;
    let _qclass = u16_at(b, i + 2)?;
    Some(Question {
        id,
        name,
        qtype,
        end: i + 4,
    })
}

/// A reply to `query` with this response code and no records (5 = REFUSED): header and
/// question copied, nothing else.
pub fn reply_code(query: &[u8], q: &Question, rcode: u8) -> Vec<u8> {
    let mut out = query[..q.end.min(query.len())].to_vec();
    if out.len() < 12 {
        out.resize(12, 0);
    }
    let rd = out[2] & 0x01;
    out[2] = 0x80 | rd; // QR, opcode 0, RD kept
    out[3] = 0x80 | (rcode & 0x0F); // RA
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..12].fill(0);
    out
}

/// The A records of a response's answer section, with their TTLs (seconds).
pub fn answer_addrs(b: &[u8]) -> Vec<(Ipv4Addr, u32)> {
    let mut out = Vec::new();
    let (Some(qd), Some(an)) = (u16_at(b, 4), u16_at(b, 6)) else {
        return out;
    };
    let mut i = 12;
    for _ in 0..qd {
        let Some((_, j)) = read_name(b, i) else {
            return out;
        };
        i = j + 4;
    }
    for _ in 0..an {
        let Some((_, j)) = read_name(b, i) else {
            return out;
        };
        let (Some(rtype), Some(class), Some(ttl), Some(len)) = (
            u16_at(b, j),
            u16_at(b, j + 2),
            u32_at(b, j + 4),
            u16_at(b, j + 8),
        ) else {
            return out;
        };
        let data = j + 10;
        if rtype == 1 && class == 1 && len == 4 {
            if let Some(a) = b.get(data..data + 4) {
                out.push((Ipv4Addr::new(a[0], a[1], a[2], a[3]), ttl));
            }
        }
        i = data + len as usize;
    }
    out
}

/// The ID of a message.
pub fn message_id(b: &[u8]) -> Option<u16> {
    u16_at(b, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn questions_refusals_and_answers() {
        let q = query("API.Example.com", 1);
        let parsed = parse_query(&q).unwrap();
        assert_eq!(
            (parsed.id, parsed.name.as_str(), parsed.qtype),
            (0x1234, "api.example.com", 1)
        );
        let r = reply_code(&q, &parsed, 5);
        assert_eq!(r[3] & 0x0F, 5);
        assert_eq!(r[2] & 0x80, 0x80);
        // An answer: the question, a CNAME (skipped) and an A record through a pointer.
        let mut resp = q.clone();
        resp[2] = 0x81;
        resp[7] = 2;
        resp.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 30, 0, 2, 0xC0, 12]);
        resp.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 10, 9, 8, 7]);
        assert_eq!(answer_addrs(&resp), vec![(Ipv4Addr::new(10, 9, 8, 7), 256)]);
        // Hostile bytes: loops, truncation, nonsense — never a panic.
        assert_eq!(parse_query(&[0xC0, 0x0C]), None);
        let mut looped = q.clone();
        looped.truncate(12);
        looped.extend_from_slice(&[0xC0, 12]);
        assert_eq!(parse_query(&looped), None);
        for n in 0..resp.len() {
            let _ = answer_addrs(&resp[..n]);
            let _ = parse_query(&resp[..n]);
        }
    }
}
