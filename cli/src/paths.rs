//! Where things are on a host: where the commands look, and so the defaults of the
//! options that name a file. A leaf: the parser (`args`) and the commands both read it.

/// The settings file the library reads; a set-user-ID program reads no other settings.
pub const CONF: &str = nosparse_core::config::CONFIG_FILE;
/// Where VMware installs vmx, the program `nosparse vmware install` wraps by default.
pub const VMX: &str = "/usr/lib/vmware/bin/vmware-vmx";
/// What `nosparse vmware` records, for `uninstall` and `repair`; not empty while a
/// wrapper is installed.
pub const VMWARE_STATE: &str = "/var/lib/nosparse/vmware";
/// Where `nosparse vmware install` writes the wrapper.
pub const WRAPPER_DIR: &str = "/etc/vmware";
