//! Shell pieces shared by the Redis and Sentinel start scripts.
//!
//! Both containers start from `sh -c SCRIPT`: read the passwords from the
//! mounted Secret, write their config file into an in-memory volume (umask
//! 077), and exec the server, so no password is an argument, an environment
//! variable or in a ConfigMap. With Sentinel, both first ask the Sentinels
//! who the primary is: a restarted pod must follow the primary Sentinel
//! chose, never assume it is pod 0 (the split brain other operators suffer).

use super::names::{self, ADMIN_PASSWORD_KEY, PASSWORD_KEY, SENTINEL_PORT};
use crate::validate::Bridge;

/// Where the Redis password Secret is mounted in Redis and Sentinel pods.
pub const SECRET_DIR: &str = "/etc/redis-secret";

/// `set -eu`, umask 077, and `$admin` / `$user` read from the Secret files.
pub fn prelude() -> String {
    format!(
        "set -eu\n\
         umask 077\n\
         admin=\"$(cat {SECRET_DIR}/{ADMIN_PASSWORD_KEY})\"\n\
         user=\"$(cat {SECRET_DIR}/{PASSWORD_KEY})\"\n"
    )
}

/// Writes `lines` (which may use `$admin`, `$user`, `$me`) to `$conf`.
pub fn write_conf(lines: &[String]) -> String {
    let quoted: Vec<String> = lines.iter().map(|l| format!("  \"{l}\" \\")).collect();
    format!("printf '%s\\n' \\\n{}\n  > \"$conf\"\n", quoted.join("\n"))
}

/// Defines `ask_primary` (prints the host the Sentinels name as primary,
/// or nothing when none answers sensibly) and `healthy_replicas` (how many
/// replicas the Sentinels see up). Both ask the Sentinels' client Service,
/// which holds ready Sentinels only, as the default user (`$user`).
pub fn sentinel_functions(b: &Bridge) -> String {
    let service = names::service_host(b, &names::sentinel(b));
    let master = names::sentinel_master(b);
    format!(
        "sentinel_cli() {{\n\
         \x20 REDISCLI_AUTH=\"$user\" timeout 3 redis-cli -h {service} -p {SENTINEL_PORT} --raw \"$@\" 2>/dev/null\n\
         }}\n\
         ask_primary() {{\n\
         \x20 answer=\"$(sentinel_cli sentinel get-master-addr-by-name {master})\" || return 0\n\
         \x20 host=\"$(printf '%s\\n' \"$answer\" | sed -n 1p)\"\n\
         \x20 port=\"$(printf '%s\\n' \"$answer\" | sed -n 2p)\"\n\
         \x20 case \"$host\" in ''|*[!A-Za-z0-9.-]*) return 0 ;; esac\n\
         \x20 case \"$port\" in ''|*[!0-9]*) return 0 ;; esac\n\
         \x20 printf '%s\\n' \"$host\"\n\
         }}\n\
         healthy_replicas() {{\n\
         \x20 sentinel_cli sentinel replicas {master} | grep -A1 '^flags$' | grep -c '^slave$' || true\n\
         }}\n"
    )
}
