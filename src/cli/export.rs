//! `tgvault export`: eDiscovery packages.

use super::*;

pub(super) fn run(
    command: Command,
    service: &Service,
    who: &Principal,
    args: Vec<String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::Export {
            query,
            out: dir_out,
            mailbox,
            format,
            case,
            dedup,
            transcripts,
            out_json,
        } => {
            let parsed =
                crate::query::parse(&query).map_err(|e| Error::Usage(format!("query: {e}")))?;
            let opts = crate::export::ExportOptions {
                query_text: query,
                query: parsed,
                out: dir_out,
                mailboxes: mailbox
                    .iter()
                    .map(|m| mailbox_arg(m))
                    .collect::<Result<Vec<_>>>()?,
                format: match format {
                    FormatArg::Eml => crate::export::Format::Eml,
                    FormatArg::Mbox => crate::export::Format::Mbox,
                },
                case,
                dedup,
                transcripts,
            };
            let s = service.export(who, &opts, args)?;
            if out_json.json {
                emit_value(out, &s)?;
            } else {
                w(
                    out,
                    format_args!(
                        "exported {} items ({} bytes) to {}; {} duplicate(s) listed, {} error(s)\n",
                        s.items, s.bytes, s.out, s.duplicates, s.errors
                    ),
                )?;
            }
            Ok(if s.errors == 0 {
                Outcome::Ok
            } else {
                Outcome::Partial
            })
        }
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}
