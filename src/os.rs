//! Facts about the operating system's accounts: who runs this process, and
//! the name of a uid (from `/etc/passwd`, as `getpwuid` would find it for
//! local accounts).

/// The account name of `uid`, if `/etc/passwd` has it.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// The name the trail gives an account: its name, else `uid N`.
pub fn account(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The account running this process.
pub fn current_account() -> String {
    account(rustix::process::getuid().as_raw())
}

/// The id of a group, if `/etc/group` has it.
pub fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}
