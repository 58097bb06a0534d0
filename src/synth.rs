//! A generator of synthetic Telegram Desktop exports, for the crash tests and the
//! benches: deterministic from a seed, shaped like real full-account exports
//! (personal chats, groups, supergroups; replies, edits, formatted text,
//! calls, service events; a share of messages with media files on disk).

use crate::error::{Error, Result};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

pub struct SynthSpec {
    pub messages: u64,
    pub chats: u64,
    /// Per mille of messages that carry a media file.
    pub attachment_permille: u64,
    /// Media file sizes are uniform in `1..=max_attachment_bytes`.
    pub max_attachment_bytes: u64,
    pub seed: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast and good enough for test data.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "the",
    "deal",
    "report",
    "meeting",
    "tomorrow",
    "price",
    "client",
    "confirm",
    "wire",
    "transfer",
    "contract",
    "signed",
    "please",
    "review",
    "numbers",
    "quarter",
    "budget",
    "call",
    "me",
    "when",
    "you",
    "can",
    "approved",
    "pending",
    "compliance",
    "risk",
    "trade",
    "order",
    "shares",
    "bond",
    "yield",
    "market",
    "open",
    "close",
    "invoice",
    "payment",
    "встреча",
    "договор",
    "цена",
    "завтра",
    "مرحبا",
    "صفقة",
    "会议",
    "合同",
    "👍",
    "🔥",
];

fn sentence(rng: &mut Rng) -> String {
    // Real chat text is mostly short with a long tail.
    let words = match rng.below(100) {
        0..=59 => 1 + rng.below(8),
        60..=89 => 8 + rng.below(20),
        _ => 28 + rng.below(80),
    };
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// Writes an export into `dir` (which must not exist or be empty) and returns
/// the number of bytes of `result.json`.
pub fn write_export(dir: &Path, spec: &SynthSpec) -> Result<u64> {
    let io = |e| Error::io(dir, e);
    fs::create_dir_all(dir).map_err(io)?;
    let json_path = dir.join("result.json");
    let f = fs::File::create(&json_path).map_err(|e| Error::io(&json_path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut rng = Rng(spec.seed | 1);
    let owner = 1_000_000u64;
    write!(
        w,
        "{{\n \"about\": \"synthetic export\",\n \"personal_information\": {{\"user_id\": {owner}, \"first_name\": \"Owner\", \"last_name\": \"Synth\", \"phone_number\": \"+1 555 000 0000\", \"username\": \"owner\", \"bio\": \"\"}},\n \"chats\": {{\n  \"about\": \"\",\n  \"list\": ["
    )
    .map_err(io)?;
    let per_chat = spec.messages / spec.chats.max(1);
    let mut written = 0u64;
    // Every chat runs over the same period, as in a real account: the export
    // lists chat after chat, each oldest first, so the file is not in date
    // order. A message comes 1..120 s after the account's previous one on
    // average, as if the chats took turns.
    let spacing = 120 * spec.chats.max(1);
    for c in 0..spec.chats {
        let mut t = 1_600_000_000u64 + rng.below(spacing);
        let count = if c + 1 == spec.chats {
            spec.messages - written
        } else {
            per_chat
        };
        let (kind, id) = match c % 4 {
            0 | 1 => ("personal_chat", 2_000_000 + c),
            2 => ("private_group", 3_000_000 + c),
            _ => ("public_supergroup", 4_000_000 + c),
        };
        let chat_dir = format!("chats/chat_{:03}", c + 1);
        if c > 0 {
            w.write_all(b",").map_err(io)?;
        }
        write!(
            w,
            "\n   {{\n    \"name\": {},\n    \"type\": \"{kind}\",\n    \"id\": {id},\n    \"messages\": [",
            json_str(&format!("Chat {c}"))
        )
        .map_err(io)?;
        for m in 0..count {
            t += 1 + rng.below(spacing);
            let sender = if rng.below(2) == 0 {
                owner
            } else if kind == "personal_chat" {
                id
            } else {
                5_000_000 + rng.below(50)
            };
            if m > 0 {
                w.write_all(b",").map_err(io)?;
            }
            let msg_id = m + 1;
            write!(
                w,
                "\n     {{\n      \"id\": {msg_id},\n      \"type\": \"message\",\n      \"date\": \"2020-09-13T12:26:40\",\n      \"date_unixtime\": \"{t}\",\n      \"from\": \"User {sender}\",\n      \"from_id\": \"user{sender}\","
            )
            .map_err(io)?;
            if m > 0 && rng.below(10) == 0 {
                write!(w, "\n      \"reply_to_message_id\": {},", 1 + rng.below(m)).map_err(io)?;
            }
            if rng.below(50) == 0 {
                write!(w, "\n      \"edited\": \"2020-09-13T12:30:00\",\n      \"edited_unixtime\": \"{}\",", t + 60).map_err(io)?;
            }
            if rng.below(1000) < spec.attachment_permille {
                let size = 1 + rng.below(spec.max_attachment_bytes);
                let rel = format!("{chat_dir}/files/file_{msg_id}.bin");
                let path = dir.join(&rel);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let mut bytes = Vec::with_capacity(size as usize);
                while (bytes.len() as u64) < size {
                    bytes.extend_from_slice(&rng.next().to_le_bytes());
                }
                bytes.truncate(size as usize);
                fs::write(&path, &bytes).map_err(|e| Error::io(&path, e))?;
                write!(
                    w,
                    "\n      \"file\": \"{rel}\",\n      \"file_name\": \"file_{msg_id}.bin\",\n      \"file_size\": {size},\n      \"mime_type\": \"application/octet-stream\","
                )
                .map_err(io)?;
            }
            let text = sentence(&mut rng);
            if rng.below(20) == 0 {
                write!(
                    w,
                    "\n      \"text\": [{}, {{\"type\": \"bold\", \"text\": \"note\"}}],\n      \"text_entities\": [{{\"type\": \"plain\", \"text\": {}}}, {{\"type\": \"bold\", \"text\": \"note\"}}]\n     }}",
                    json_str(&text),
                    json_str(&text)
                )
                .map_err(io)?;
            } else {
                write!(
                    w,
                    "\n      \"text\": {},\n      \"text_entities\": [{{\"type\": \"plain\", \"text\": {}}}]\n     }}",
                    json_str(&text),
                    json_str(&text)
                )
                .map_err(io)?;
            }
        }
        w.write_all(b"\n    ]\n   }").map_err(io)?;
        written += count;
    }
    w.write_all(b"\n  ]\n }\n}\n").map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);
    Ok(fs::metadata(&json_path)
        .map_err(|e| Error::io(&json_path, e))?
        .len())
}
