//! A stand-in for the host's syslog socket: a datagram socket the test binds and reads,
//! shown to one program as `/dev/log` through a private mount namespace whose `/dev` is a
//! fresh tmpfs. The host's own `/dev/log`, if it has one, is never touched.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sent by the test itself: everything queued before it has been read.
const MARK: &[u8] = b"\0nosparse-test-mark";
const STOP: &[u8] = b"\0nosparse-test-stop";
/// Largest datagram kept whole; a syslog line is far shorter.
const DATAGRAM_MAX: usize = 64 << 10;

/// The socket, and every datagram it received.
pub struct DevLog {
    dir: PathBuf,
    socket: PathBuf,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    marks: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
}

impl DevLog {
    /// Binds a socket in a directory of its own under the system's temporary directory
    /// (a socket path must stay under 108 bytes) and starts reading it.
    pub fn new() -> DevLog {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nosparse-devlog-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the /dev/log directory");
        let socket = dir.join("log");
        let sock = UnixDatagram::bind(&socket).unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let marks = Arc::new(AtomicU64::new(0));
        let reader = {
            let (received, marks) = (received.clone(), marks.clone());
            // Read all the time, so that a program logging a lot (its own syslog lines)
            // never blocks on a full socket.
            std::thread::spawn(move || {
                let mut buf = vec![0u8; DATAGRAM_MAX];
                while let Ok(n) = sock.recv(&mut buf) {
                    match &buf[..n] {
                        STOP => return,
                        MARK => {
                            marks.fetch_add(1, Ordering::SeqCst);
                        }
                        d => received.lock().unwrap_or_else(|e| e.into_inner()).push(d.to_vec()),
                    }
                }
            })
        };
        DevLog { dir, socket, received, marks, reader: Some(reader) }
    }

    fn send(&self, what: &[u8]) {
        let tx = UnixDatagram::unbound().expect("a datagram socket");
        tx.send_to(what, &self.socket).expect("send to the test's /dev/log");
    }

    /// Every datagram received so far (and since the last call), as text.
    pub fn take(&self) -> Vec<String> {
        let seen = self.marks.load(Ordering::SeqCst);
        self.send(MARK);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.marks.load(Ordering::SeqCst) == seen {
            assert!(Instant::now() < deadline, "the /dev/log reader did not answer");
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut got = self.received.lock().unwrap_or_else(|e| e.into_inner());
        got.drain(..).map(|d| String::from_utf8_lossy(&d).into_owned()).collect()
    }

    /// The socket's path, to be bind-mounted as `/dev/log`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for DevLog {
    fn drop(&mut self) {
        self.send(STOP);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Shell commands that give a program run with [`super::Vmx::private_mounts`] a `/dev` of
/// its own: the usual character devices, and `/dev/log` only when `log` is given.
pub fn private_dev(log: Option<&DevLog>) -> String {
    let mut s = String::from("mount -t tmpfs -o mode=755 nosparse-test-dev /dev");
    for (name, minor) in [("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)] {
        s += &format!("; mknod -m 666 /dev/{name} c 1 {minor}");
    }
    s += "; ln -s /proc/self/fd /dev/fd";
    if let Some(log) = log {
        s += &format!("; touch /dev/log; mount --bind '{}' /dev/log", log.socket().display());
    }
    s
}
