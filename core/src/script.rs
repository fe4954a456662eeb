//! The Lua scripts the machines send, with their SHA1 digests for `EVALSHA`.

/// A Lua script and the SHA1 digest Redis files it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// A short name for logs.
    pub name: &'static str,
    /// The script source, exactly as sent with `EVAL`.
    pub source: &'static str,
    /// The lowercase hex SHA1 of `source`, as used by `EVALSHA` and returned by `SCRIPT LOAD`.
    pub sha1: &'static str,
}

/// Locks several keys all-or-nothing: `KEYS` = the resources, `ARGV[1]` = value, `ARGV[2]` = TTL
/// in ms. Returns 1 when every key was set, 0 when any key already existed (nothing is set then).
/// A single-key acquire uses plain `SET key value NX PX ttl` instead.
pub const ACQUIRE_SCRIPT: Script = Script {
    name: "acquire",
    source: include_str!("../scripts/acquire.lua"),
    sha1: "d0fb9ff6a1047ddcbf0ec919899f340d5c1d29b8",
};

/// Extends: if every key still holds `ARGV[1]`, sets its TTL to `ARGV[2]` ms and returns 1;
/// otherwise changes nothing and returns 0. It never creates a key.
pub const EXTEND_SCRIPT: Script = Script {
    name: "extend",
    source: include_str!("../scripts/extend.lua"),
    sha1: "a93b478be3c54208b0c47537712fbe26f71f387d",
};

/// Releases: deletes each key that still holds `ARGV[1]` and returns how many it deleted. Keys
/// holding another value are left alone, so a late release never frees another holder's lock.
pub const RELEASE_SCRIPT: Script = Script {
    name: "release",
    source: include_str!("../scripts/release.lua"),
    sha1: "0fdaa1a21c1d8c4f3b6c5eef9c7624a83482c380",
};

/// The channel prefix [`RELEASE_NOTIFY_SCRIPT`] publishes on: a release of `key` is announced
/// on `redlock:released:<key>` with the released value as the message.
pub const RELEASE_CHANNEL_PREFIX: &str = "redlock:released:";

/// Releases like [`RELEASE_SCRIPT`] and also publishes each deletion on
/// [`RELEASE_CHANNEL_PREFIX`]`<key>`, so waiters can retry at once instead of sleeping out their
/// retry delay. Chosen by [`Config::with_release_notification`](crate::Config::with_release_notification).
pub const RELEASE_NOTIFY_SCRIPT: Script = Script {
    name: "release-notify",
    source: include_str!("../scripts/release_notify.lua"),
    sha1: "5ba58ac79f01e954ac208250a31106eb167d9b27",
};

/// Every script, for hosts that preload them with `SCRIPT LOAD`.
pub const SCRIPTS: [Script; 4] = [
    ACQUIRE_SCRIPT,
    EXTEND_SCRIPT,
    RELEASE_SCRIPT,
    RELEASE_NOTIFY_SCRIPT,
];
