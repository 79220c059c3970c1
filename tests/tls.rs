//! HTTPS trusts the platform's CA roots: a release served over TLS by a certificate from
//! a private CA (as behind a corporate, intercepting proxy) is reachable when the system
//! trusts that CA (`SSL_CERT_FILE` here), and refused — with a clear error, nothing
//! cached — when it does not.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::{json, Home};

fn openssl(dir: &Path, args: &[&str]) {
    support::run_ok(
        Command::new("openssl").current_dir(dir).args(args),
        &format!("openssl {args:?}"),
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
/// A CA for two days in `dir`: `STEM.key` and `STEM.pem`, subject `subject`.
fn self_signed_ca(dir: &Path, stem: &str, subject: &str) {
    let (key, pem) = (format!("{stem}.key"), format!("{stem}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-days", "2", "-subj", subject,
        ],
    );
}

fn make_pki(dir: &Path) {
    self_signed_ca(dir, "ca", "/CN=smolvm test CA");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

struct HttpsServer {
    child: Child,
    port: u16,
}

impl HttpsServer {
    fn start(root: &Path, pki: &Path) -> Self {
        let script = r#"
import http.server, ssl, sys, functools
root, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(root)
            .arg(pki.join("server.pem"))
            .arg(pki.join("server.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        HttpsServer {
            port: line.trim().parse().unwrap(),
            child,
        }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_trusts_the_platforms_roots_and_only_them() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED (LOUDLY): no openssl CLI to make a test CA");
        return;
    }
    let h = Home::new();
    let pki = h.tmp.path().join("pki");
    let release = h.tmp.path().join("release");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::create_dir_all(&release).unwrap();
    make_pki(&pki);
    std::fs::write(
        release.join("manifest.json"),
        r#"{"release": "tls-test", "images": [
          {"preset": "codex", "arch": "amd64", "vmm": "qemu", "os": "ubuntu",
           "kernel_url": "vmlinux-amd64.image", "kernel_sha256": "0000000000000000000000000000000000000000000000000000000000000000",
           "rootfs_url": "codex-amd64-rootfs.ext4.zst", "rootfs_sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]}"#,
    )
    .unwrap();
    let server = HttpsServer::start(&release, &pki);
    let url = format!("https://127.0.0.1:{}/manifest.json", server.port);
    let inspect = |ca_file: &Path| {
        h.smolvm()
            .env("SMOLVM_MANIFEST", &url)
            .env("SSL_CERT_FILE", ca_file)
            .env("SMOLVM_HTTP_TIMEOUT_SECS", "5")
            .env("SMOLVM_HTTP_RETRIES", "0")
            .args([
                "image", "inspect", "codex", "--arch", "amd64", "--vmm", "qemu", "--json",
            ])
            .output()
            .unwrap()
    };
    // The system trusts the private CA: the manifest is read over TLS.
    let out = inspect(&pki.join("ca.pem"));
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["data"][0]["release"], "tls-test", "{v:#}");
    // It does not (another CA only): refused, however the bundled roots look.
    self_signed_ca(&pki, "other", "/CN=another CA");
    let out = inspect(&pki.join("other.pem"));
    let v = json(&out);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    let msg = support::error_message(&v).to_lowercase();
    assert!(
        msg.contains("certificate") || msg.contains("tls") || msg.contains("https"),
        "{msg}"
    );
}
