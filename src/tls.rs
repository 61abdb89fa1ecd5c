//! TLS (`-Z`): memcached's `ssl_*` options on rustls (ring provider).
//!
//! [`TlsOptions`] is what `-o ssl_...` set (checked at parse time, files
//! not yet read). [`Tls`] is the running state: the current
//! `rustls::ServerConfig` behind a lock, swapped whole by `refresh_certs`
//! so that new handshakes use the new certificate and key while existing
//! connections keep the session they negotiated; the session-ticket key and
//! the session cache live outside it, so a refresh does not end resumption.
//! Each accepted connection takes an `Arc` of the config of the moment
//! (one read lock, no copy).
//!
//! Differences from memcached's OpenSSL build are listed in
//! `docs/protocol-notes.md` ("TLS").

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite};

/// OpenSSL's `SSL_FILETYPE_PEM` and `SSL_FILETYPE_ASN1`, as memcached
/// takes and reports `ssl_keyformat`.
pub const KEYFORMAT_PEM: i64 = 1;
pub const KEYFORMAT_DER: i64 = 2;
/// memcached's default `ssl_wbuf_size`: 16 KiB.
pub const DEFAULT_WBUF_SIZE: usize = 16 * 1024;
/// The largest `ssl_wbuf_size` taken, in kilobytes (1 MiB). The records
/// rustls holds count toward a connection's 1 MiB output high-water mark,
/// so a larger buffer would not be filled, only allowed; memcached takes
/// any size (its buffer is one per thread).
pub const MAX_WBUF_KB: usize = 1024;
/// Sessions the server-side cache holds with `ssl_session_cache`.
const SESSION_CACHE_ENTRIES: usize = 1024;

/// The lowest protocol version accepted (`ssl_min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

impl MinVersion {
    /// As memcached prints it in `stats settings`.
    pub fn as_str(self) -> &'static str {
        match self {
            MinVersion::Tls12 => "tlsv1.2",
            MinVersion::Tls13 => "tlsv1.3",
        }
    }
}

/// What the `-o ssl_*` options set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub chain_cert: Option<PathBuf>,
    /// The private key; without it the key is read from `chain_cert`.
    pub key: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    /// 0 none, 1 request (verify if sent), 2 require, 3 require once.
    pub verify_mode: u8,
    /// [`KEYFORMAT_PEM`] or [`KEYFORMAT_DER`].
    pub keyformat: i64,
    /// An OpenSSL-style list of suite names, `:` separated.
    pub ciphers: Option<String>,
    /// Most TLS output rustls buffers for one connection, in bytes
    /// (16 KiB to [`MAX_WBUF_KB`]).
    pub wbuf_size: usize,
    pub session_cache: bool,
    pub min_version: MinVersion,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            chain_cert: None,
            key: None,
            ca_cert: None,
            verify_mode: 0,
            keyformat: KEYFORMAT_PEM,
            ciphers: None,
            wbuf_size: DEFAULT_WBUF_SIZE,
            session_cache: false,
            min_version: MinVersion::Tls12,
        }
    }
}

impl TlsOptions {
    /// `ssl_verify_mode` as memcached reports it: OpenSSL's flag bits
    /// (PEER 1, FAIL_IF_NO_PEER_CERT 2, CLIENT_ONCE 4).
    pub fn verify_bits(&self) -> u8 {
        match self.verify_mode {
            0 => 0,
            1 => 1,
            2 => 3,
            _ => 7,
        }
    }

    /// Reads one `-o` option if it is an `ssl_` one. `Ok(false)`: not ours.
    pub fn parse_option(&mut self, name: &str, value: Option<&str>) -> Result<bool, String> {
        let need = || value.map(str::trim).filter(|v| !v.is_empty()).ok_or(format!("Missing {name} argument"));
        match name {
            "ssl_chain_cert" => self.chain_cert = Some(need()?.into()),
            "ssl_key" => self.key = Some(need()?.into()),
            "ssl_ca_cert" => self.ca_cert = Some(need()?.into()),
            "ssl_ciphers" => {
                let list = need()?;
                suites_for(list)?;
                self.ciphers = Some(list.to_string());
            }
            "ssl_verify_mode" => {
                let v: i64 = need()?.parse().map_err(|_| "could not parse argument to ssl_verify_mode".to_string())?;
                self.verify_mode = u8::try_from(v)
                    .ok()
                    .filter(|v| *v <= 3)
                    .ok_or("Invalid ssl_verify_mode. Use help to see valid options.")?;
            }
            "ssl_keyformat" => {
                let v: i64 = need()?.parse().map_err(|_| "could not parse argument to ssl_keyformat".to_string())?;
                if v != KEYFORMAT_PEM && v != KEYFORMAT_DER {
                    return Err(format!(
                        "-o ssl_keyformat={v} is not supported: keys are read as PEM (1) or DER (2); there are no OpenSSL engines"
                    ));
                }
                self.keyformat = v;
            }
            "ssl_wbuf_size" => {
                let kb: usize = need()?.parse().map_err(|_| "could not parse argument to ssl_wbuf_size".to_string())?;
                // Below one record rustls could not queue a full one.
                if !(1..=MAX_WBUF_KB).contains(&kb) {
                    return Err(format!("ssl_wbuf_size must be 1 to {MAX_WBUF_KB} (kilobytes)"));
                }
                self.wbuf_size = (kb * 1024).max(DEFAULT_WBUF_SIZE);
            }
            "ssl_session_cache" => self.session_cache = true,
            "ssl_min_version" => {
                self.min_version = match need()? {
                    "2" | "tlsv1.2" => MinVersion::Tls12,
                    "3" | "tlsv1.3" => MinVersion::Tls13,
                    "0" | "1" | "tlsv1.0" | "tlsv1.1" => {
                        return Err(
                            "-o ssl_min_version below TLS 1.2 is not supported: rustls speaks TLS 1.2 and 1.3 only"
                                .into(),
                        )
                    }
                    _ => return Err("Invalid ssl_min_version. Use help to see valid options.".into()),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The suites rustls offers, by the names OpenSSL and IANA give them.
fn suite_names(s: SupportedCipherSuite) -> [String; 2] {
    let iana = format!("{:?}", s.suite());
    // rustls names TLS 1.3 suites TLS13_*; IANA and OpenSSL say TLS_*.
    let iana = iana.strip_prefix("TLS13_").map_or(iana.clone(), |rest| format!("TLS_{rest}"));
    let openssl = match iana.strip_prefix("TLS_ECDHE_") {
        Some(rest) => {
            let rest = rest
                .replace("_WITH_AES_128_GCM_SHA256", "-AES128-GCM-SHA256")
                .replace("_WITH_AES_256_GCM_SHA384", "-AES256-GCM-SHA384")
                .replace("_WITH_CHACHA20_POLY1305_SHA256", "-CHACHA20-POLY1305");
            format!("ECDHE-{rest}")
        }
        None => iana.clone(),
    };
    [iana, openssl]
}

/// The suites an `ssl_ciphers` list names. As with OpenSSL's cipher list,
/// TLS 1.3 suites stay on unless the list names some of them. A name
/// rustls does not have, or an OpenSSL keyword (`HIGH`, `!aNULL`...), is
/// refused.
fn suites_for(list: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for name in list.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        let found = all.iter().find(|s| suite_names(**s).iter().any(|n| n.eq_ignore_ascii_case(name)));
        match found {
            Some(s) if !chosen.iter().any(|c| c.suite() == s.suite()) => chosen.push(*s),
            Some(_) => {}
            None => {
                let known: Vec<String> = all.iter().map(|s| suite_names(*s)[1].clone()).collect();
                return Err(format!(
                    "Error setting the provided cipher(s): {list}: {name} is not a suite ferrocache has (it has {}); OpenSSL keywords are not supported",
                    known.join(":")
                ));
            }
        }
    }
    if chosen.is_empty() {
        return Err(format!("Error setting the provided cipher(s): {list}"));
    }
    if !chosen.iter().any(|s| matches!(s, SupportedCipherSuite::Tls13(_))) {
        chosen.extend(all.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))));
    }
    Ok(chosen)
}

/// The running TLS state, shared by every loop.
pub struct Tls {
    pub options: TlsOptions,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<ServerConfig>>,
    /// Kept across refreshes so resumption survives them.
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
    /// Store-clock seconds of the last (re)load of the certificates.
    refreshed_at: AtomicU32,
    /// Full handshakes done with `ssl_session_cache` (`ssl_new_sessions`).
    new_sessions: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("options", &self.options).finish_non_exhaustive()
    }
}

fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("Error loading the {what}: {} : {e}", path.display()))
}

/// Reads every PEM certificate in `path`.
fn load_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("Error loading the {what}: {} : {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("Error loading the {what}: {} : no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path, format: i64) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_file("key", path)?;
    let key = if format == KEYFORMAT_DER {
        PrivateKeyDer::try_from(bytes).map_err(|e| e.to_string())
    } else {
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| e.to_string())
    };
    key.map_err(|e| format!("Error loading the key: {} : {e}", path.display()))
}

/// The CA certificates client certificates are verified against.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs("CA certificate", path)? {
        roots.add(c).map_err(|e| format!("Error loading the CA certificate: {} : {e}", path.display()))?;
    }
    Ok(roots)
}

/// A server config from the files as they are now.
fn build(
    o: &TlsOptions,
    provider: &Arc<CryptoProvider>,
    sessions: &Arc<dyn StoresServerSessions>,
    tickets: &Arc<dyn ProducesTickets>,
) -> Result<ServerConfig, String> {
    let chain_path = o.chain_cert.as_deref().ok_or("no ssl_chain_cert")?;
    let chain = load_certs("certificate chain", chain_path)?;
    let key = load_key(o.key.as_deref().unwrap_or(chain_path), o.keyformat)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match o.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("Error setting the provided cipher(s): {e}"))?;
    let builder = match &o.ca_cert {
        Some(ca) if o.verify_mode > 0 => {
            let roots = Arc::new(load_roots(ca)?);
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let v = if o.verify_mode == 1 { v.allow_unauthenticated() } else { v };
            let v = v.build().map_err(|e| format!("Error loading the CA certificate: {} : {e}", ca.display()))?;
            builder.with_client_cert_verifier(v)
        }
        Some(ca) => {
            // Mode 0 checks nothing, but a bad file is still an error.
            load_roots(ca)?;
            builder.with_no_client_auth()
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(chain, key).map_err(|e| format!("Error validating the certificate: {e}"))?;
    config.session_storage = sessions.clone();
    config.ticketer = tickets.clone();
    Ok(config)
}

impl Tls {
    /// Reads the certificate, key and CA (as at start: errors exit 64).
    pub fn new(options: TlsOptions, now: u32) -> Result<Tls, String> {
        if options.chain_cert.is_none() {
            return Err("-Z needs -o ssl_chain_cert=FILE (and ssl_key=FILE unless the key is in it)".into());
        }
        if options.verify_mode > 0 && options.ca_cert.is_none() {
            return Err(format!(
                "ssl_verify_mode={} verifies client certificates: it needs -o ssl_ca_cert=FILE",
                options.verify_mode
            ));
        }
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(list) = &options.ciphers {
            provider.cipher_suites = suites_for(list)?;
        }
        let sessions: Arc<dyn StoresServerSessions> = if options.session_cache {
            ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES)
        } else {
            Arc::new(NoServerSessionStorage {})
        };
        let tickets = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("cannot make a ticket key: {e}"))?;
        let provider = Arc::new(provider);
        let first = build(&options, &provider, &sessions, &tickets)?;
        Ok(Tls {
            provider,
            current: RwLock::new(Arc::new(first)),
            sessions,
            tickets,
            refreshed_at: AtomicU32::new(now),
            new_sessions: Arc::new(AtomicU64::new(0)),
            options,
        })
    }

    /// `refresh_certs`: reloads the certificate chain, key and CA. New
    /// handshakes use them; open connections are not touched. On error
    /// the old ones stay.
    pub fn refresh(&self, now: u32) -> Result<(), String> {
        let config = build(&self.options, &self.provider, &self.sessions, &self.tickets)?;
        *self.current.write() = Arc::new(config);
        self.refreshed_at.store(now, Ordering::Relaxed);
        Ok(())
    }
    /// A server-side connection for a client just accepted.
    pub fn accept(&self) -> Result<ServerConnection, rustls::Error> {
        let config = self.current.read().clone();
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(self.options.wbuf_size));
        Ok(conn)
    }

    /// The client side for node health checks: nodes are verified against
    /// `ssl_ca_cert`, and this node shows its own certificate and key (so
    /// peers that require client certificates accept the check).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let o = &self.options;
        let ca = o
            .ca_cert
            .as_deref()
            .ok_or("-Z with a cluster: node health checks need -o ssl_ca_cert=FILE to verify the nodes")?;
        let roots = load_roots(ca)?;
        let chain_path = o.chain_cert.as_deref().ok_or("no ssl_chain_cert")?;
        let chain = load_certs("certificate chain", chain_path)?;
        let key = load_key(o.key.as_deref().unwrap_or(chain_path), o.keyformat)?;
        let config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("Error validating the certificate: {e}"))?;
        Ok(Arc::new(config))
    }

    /// Seconds since the certificates were last loaded.
    pub fn since_refresh(&self, now: u32) -> u32 {
        now.saturating_sub(self.refreshed_at.load(Ordering::Relaxed))
    }

    /// New sessions made (with `ssl_session_cache`).
    pub fn new_sessions(&self) -> u64 {
        self.new_sessions.load(Ordering::Relaxed)
    }

    /// `stats reset`: `ssl_new_sessions` counts from zero again, as
    /// memcached's does.
    pub fn reset_new_sessions(&self) {
        self.new_sessions.store(0, Ordering::Relaxed);
    }

    /// What a connection counts its new session in: with
    /// `ssl_session_cache`, each full (not resumed) handshake is one, as
    /// OpenSSL's new-session callback counts them for memcached.
    pub fn new_session_counter(&self) -> Option<Arc<AtomicU64>> {
        self.options.session_cache.then(|| self.new_sessions.clone())
    }
}

/// One DER element at the start of `der`: (tag, contents, rest). Only
/// what certificates use: single-byte tags, lengths of up to 4 bytes.
fn der_next(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// An OID's dotted form, or its short name for the usual name attributes.
fn oid_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 3] => "CN".into(),
        [0x55, 0x04, 6] => "C".into(),
        [0x55, 0x04, 7] => "L".into(),
        [0x55, 0x04, 8] => "ST".into(),
        [0x55, 0x04, 10] => "O".into(),
        [0x55, 0x04, 11] => "OU".into(),
        _ => {
            let mut parts = Vec::new();
            let mut v: u64 = 0;
            for &b in oid {
                v = (v << 7) | u64::from(b & 0x7f);
                if b & 0x80 == 0 {
                    if parts.is_empty() {
                        parts.push((v / 40).min(2));
                        parts.push(v - (v / 40).min(2) * 40);
                    } else {
                        parts.push(v);
                    }
                    v = 0;
                }
            }
            parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
        }
    }
}

/// A certificate's subject as `CN=...,O=...` (what `stats conns` shows
/// for a client that sent one); `?` if it cannot be read. Characters
/// outside printable ASCII (space included), and separators, are escaped as `\xNN`.
pub fn subject_of(cert: &[u8]) -> String {
    fn subject(cert: &[u8]) -> Option<String> {
        let (_, cert, _) = der_next(cert)?;
        let (_, mut tbs, _) = der_next(cert)?;
        // version [0] is optional; then serial, signature, issuer,
        // validity, subject.
        let (tag, _, rest) = der_next(tbs)?;
        if tag == 0xa0 {
            tbs = rest;
        }
        for _ in 0..4 {
            tbs = der_next(tbs)?.2;
        }
        let (_, mut name, _) = der_next(tbs)?;
        let mut out = Vec::new();
        while !name.is_empty() {
            let (_, mut set, rest) = der_next(name)?;
            name = rest;
            while !set.is_empty() {
                let (_, atv, rest) = der_next(set)?;
                set = rest;
                let (_, oid, value) = der_next(atv)?;
                let (_, value, _) = der_next(value)?;
                let mut text = String::new();
                for &b in value {
                    if b.is_ascii_graphic() && !matches!(b, b',' | b'=' | b'\\') {
                        text.push(char::from(b));
                    } else {
                        text.push_str(&format!("\\x{b:02x}"));
                    }
                }
                out.push(format!("{}={text}", oid_name(oid)));
            }
        }
        Some(out.join(","))
    }
    subject(cert).unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(pairs: &[(&str, &str)]) -> Result<TlsOptions, String> {
        let mut o = TlsOptions::default();
        for (n, v) in pairs {
            assert!(o.parse_option(n, Some(v))?, "{n}");
        }
        Ok(o)
    }

    #[test]
    fn options_read_as_memcached_reads_them() {
        let o = opt(&[("ssl_verify_mode", "2"), ("ssl_min_version", "tlsv1.3"), ("ssl_wbuf_size", "32")]).unwrap();
        assert_eq!((o.verify_mode, o.verify_bits(), o.min_version, o.wbuf_size), (2, 3, MinVersion::Tls13, 32768));
        assert_eq!(opt(&[("ssl_min_version", "2")]).unwrap().min_version, MinVersion::Tls12);
        // Kilobytes, as memcached reads them; at least 16, at most 1024.
        assert_eq!(opt(&[("ssl_wbuf_size", "1")]).unwrap().wbuf_size, DEFAULT_WBUF_SIZE);
        assert_eq!(opt(&[("ssl_wbuf_size", "1024")]).unwrap().wbuf_size, 1024 * 1024);
        for bad in ["0", "1025", "1048576", "-1", "x"] {
            assert!(opt(&[("ssl_wbuf_size", bad)]).is_err(), "{bad}");
        }
        assert_eq!(opt(&[("ssl_verify_mode", "3")]).unwrap().verify_bits(), 7);
        assert!(opt(&[("ssl_verify_mode", "4")]).is_err());
        assert!(opt(&[("ssl_min_version", "1")]).unwrap_err().contains("TLS 1.2"));
        assert!(opt(&[("ssl_keyformat", "3")]).unwrap_err().contains("not supported"));
        assert_eq!(opt(&[("ssl_keyformat", "2")]).unwrap().keyformat, KEYFORMAT_DER);
        assert!(!TlsOptions::default().parse_option("idle_timeout", Some("1")).unwrap());
    }

    #[test]
    fn ciphers_by_openssl_or_iana_name_and_keywords_refused() {
        let s = suites_for("ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        assert!(s.iter().any(|s| format!("{:?}", s.suite()) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
        // TLS 1.3 suites stay unless named.
        assert!(s.iter().any(|s| matches!(s, SupportedCipherSuite::Tls13(_))));
        let only13 = suites_for("TLS_AES_256_GCM_SHA384").unwrap();
        assert_eq!(only13.len(), 1);
        assert!(suites_for("HIGH:!aNULL").unwrap_err().contains("HIGH"));
        assert!(suites_for("ECDHE-RSA-AES128-SHA").is_err());
    }

    #[test]
    fn a_certificate_subject_reads_as_name_pairs_and_garbage_as_a_question_mark() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "client one");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "a,b=c");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_of(cert.der()), "CN=client\\x20one,O=a\\x2cb\\x3dc");
        for bad in [&[][..], &[0x30], &[0x30, 0x85, 1, 2, 3, 4, 5], &[0x30, 0x03, 0x30, 0x01, 0x02], &[0xff; 64]] {
            assert_eq!(subject_of(bad), "?");
        }
        assert_eq!(oid_name(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]), "1.2.840.113549.1.9.1");
    }

    #[test]
    fn missing_files_are_errors_naming_them() {
        let o = TlsOptions { chain_cert: Some("/nonexistent/cert.pem".into()), ..TlsOptions::default() };
        let e = Tls::new(o, 0).unwrap_err();
        assert!(e.contains("Error loading the certificate chain: /nonexistent/cert.pem"), "{e}");
        assert!(Tls::new(TlsOptions::default(), 0).unwrap_err().contains("ssl_chain_cert"));
        let o = TlsOptions { chain_cert: Some("x".into()), verify_mode: 2, ..TlsOptions::default() };
        assert!(Tls::new(o, 0).unwrap_err().contains("ssl_ca_cert"));
    }
}
