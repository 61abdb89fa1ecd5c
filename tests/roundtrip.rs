//! Compose -> parse round trips for both protocols (STYLE.md section 7): a
//! request generated here and written to wire bytes by this file's own
//! encoder parses back to the same [`Request`], uses exactly its bytes
//! (alone, and with another request behind it), and every proper prefix of
//! it parses as `Incomplete`.

mod common;

use std::borrow::Cow;

use ferrocache::protocol::binary::{self, opcode as op, Meta};
use ferrocache::protocol::{text, Keys, Limits, MetaCommand, MetaFlags, ParseError, Request, StoreCommand};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

const LIMITS: Limits = Limits { max_value: 1024 * 1024, max_line: 2048, max_get_line: 1024 * 1024, strict: false };

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, ..ProptestConfig::default() }
}

/// Parses `wire` alone, then with a second request behind it, then every
/// proper prefix of it; `parse` returns the request and the bytes used.
fn check_framing<P>(wire: &[u8], next: &[u8], want: &Request<'_>, parse: P) -> Result<(), TestCaseError>
where
    P: for<'b> Fn(&'b [u8]) -> Result<(Request<'b>, usize), ParseError>,
{
    prop_assert_eq!(parse(wire), Ok((want.clone(), wire.len())));
    let two = [wire, next].concat();
    prop_assert_eq!(parse(&two), Ok((want.clone(), wire.len())), "with {:?} behind it", next);
    for cut in 0..wire.len() {
        prop_assert_eq!(parse(&wire[..cut]), Err(ParseError::Incomplete), "the first {} bytes", cut);
    }
    Ok(())
}

// ---------------------------------------------------------------- text --

/// A key the text protocol takes: 1 to 250 bytes, none a space, a control
/// character or DEL. Not `noreply`: as the last word of `delete <key>`,
/// memcached reads that as the flag.
fn text_key() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff], 1..=250).prop_filter("noreply", |k| k != b"noreply")
}

fn exptime() -> impl Strategy<Value = i64> {
    any::<i32>().prop_map(i64::from)
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=300)
}

/// One meta flag: its letter and the token after it.
#[derive(Debug, Clone)]
enum Flag {
    /// A flag without a token (`b` among them: the key is base64).
    Plain(u8),
    /// `N`, `R` or `T` and a time.
    Time(u8, i64),
    /// `C`, `J` or `D` and a 64-bit number.
    Number(u8, u64),
    /// `F` and client flags.
    ClientFlags(u32),
    /// `M` and a mode character.
    Mode(u8),
    /// `O` and an opaque token of up to 32 bytes.
    Opaque(Vec<u8>),
}

impl Flag {
    fn token(&self) -> Vec<u8> {
        match self {
            Flag::Plain(c) => vec![*c],
            Flag::Time(c, t) => [&[*c][..], t.to_string().as_bytes()].concat(),
            Flag::Number(c, n) => [&[*c][..], n.to_string().as_bytes()].concat(),
            Flag::ClientFlags(f) => format!("F{f}").into_bytes(),
            Flag::Mode(m) => vec![b'M', *m],
            Flag::Opaque(o) => [&b"O"[..], o].concat(),
        }
    }

    /// What the flag sets in [`MetaFlags`].
    fn apply(&self, f: &mut MetaFlags<'_>) {
        match *self {
            Flag::Plain(b'b') => f.base64 = true,
            Flag::Plain(b'q') => f.quiet = true,
            Flag::Plain(b'v') => f.value = true,
            Flag::Plain(b'u') => f.no_bump = true,
            Flag::Plain(b'I') => f.invalidate = true,
            Flag::Plain(b'x') => f.remove_value = true,
            Flag::Plain(_) | Flag::Opaque(_) => {}
            Flag::Time(b'N', t) => f.vivify = Some(t),
            Flag::Time(b'R', t) => f.recache = Some(t),
            Flag::Time(_, t) => f.ttl = Some(t),
            Flag::Number(b'C', n) => f.compare_cas = Some(n),
            Flag::Number(b'J', n) => f.initial = n,
            Flag::Number(_, n) => f.delta = n,
            Flag::ClientFlags(c) => f.client_flags = c,
            Flag::Mode(m) => f.mode = Some(m),
        }
    }
}

/// Every flag letter the parser knows, each at most once in a request.
const FLAG_LETTERS: &[u8] = b"bvuqIxPLkstcfhlNRTCJDFMO";

fn flag(letter: u8, command: MetaCommand) -> BoxedStrategy<Flag> {
    match letter {
        b'N' | b'R' | b'T' => exptime().prop_map(move |t| Flag::Time(letter, t)).boxed(),
        b'C' | b'J' | b'D' => any::<u64>().prop_map(move |n| Flag::Number(letter, n)).boxed(),
        b'F' => any::<u32>().prop_map(Flag::ClientFlags).boxed(),
        b'M' => {
            let modes: &[u8] = match command {
                MetaCommand::Set => b"EAPRS",
                MetaCommand::Arith => b"I+D-",
                _ => b"abcXYZ",
            };
            select(modes).prop_map(Flag::Mode).boxed()
        }
        b'O' => vec(0x21u8..=0x7e, 0..=32).prop_map(Flag::Opaque).boxed(),
        _ => Just(Flag::Plain(letter)).boxed(),
    }
}

/// A text-protocol request, as generated.
#[derive(Debug, Clone)]
enum TextReq {
    Store {
        command: StoreCommand,
        key: Vec<u8>,
        flags: u32,
        exptime: i64,
        data: Vec<u8>,
        cas: u64,
        noreply: bool,
    },
    /// get/gets, or gat/gats with `touch`; `keys` space-separated.
    Get {
        keys: Vec<u8>,
        cas: bool,
        touch: Option<i64>,
    },
    Touch {
        key: Vec<u8>,
        exptime: i64,
        noreply: bool,
    },
    Delete {
        key: Vec<u8>,
        noreply: bool,
    },
    Arith {
        incr: bool,
        key: Vec<u8>,
        delta: u64,
        noreply: bool,
    },
    /// A meta command; `key` is the decoded key when `flags` has `b`.
    Meta {
        command: MetaCommand,
        key: Vec<u8>,
        data: Vec<u8>,
        flags: Vec<Flag>,
        raw_flags: Vec<u8>,
    },
    MetaNoop,
}

fn text_req() -> impl Strategy<Value = TextReq> {
    use StoreCommand::*;
    let store = (select(&[Set, Add, Replace, Append, Prepend, Cas][..]), text_key(), any::<u32>(), exptime(), data())
        .prop_flat_map(|(command, key, flags, exptime, data)| {
            let cas = if command == Cas { any::<u64>().boxed() } else { Just(0).boxed() };
            (cas, any::<bool>()).prop_map(move |(cas, noreply)| TextReq::Store {
                command,
                key: key.clone(),
                flags,
                exptime,
                data: data.clone(),
                cas,
                noreply,
            })
        });
    let get = (vec(text_key(), 1..=8), any::<bool>(), proptest::option::of(exptime()))
        .prop_map(|(keys, cas, touch)| TextReq::Get { keys: keys.join(&b' '), cas, touch });
    let touch = (text_key(), exptime(), any::<bool>()).prop_map(|(key, exptime, noreply)| TextReq::Touch {
        key,
        exptime,
        noreply,
    });
    let delete = (text_key(), any::<bool>()).prop_map(|(key, noreply)| TextReq::Delete { key, noreply });
    let arith = (any::<bool>(), text_key(), any::<u64>(), any::<bool>())
        .prop_map(|(incr, key, delta, noreply)| TextReq::Arith { incr, key, delta, noreply });
    let meta =
        select(&[MetaCommand::Get, MetaCommand::Set, MetaCommand::Delete, MetaCommand::Arith, MetaCommand::Debug][..])
            .prop_flat_map(|command| {
                // memcached allows 20 tokens: command, key, (length,) flags, end.
                let letters = subsequence(FLAG_LETTERS.to_vec(), 0..=16).prop_shuffle();
                let flags =
                    letters.prop_flat_map(move |ls| ls.into_iter().map(|l| flag(l, command)).collect::<Vec<_>>());
                // A base64 key may hold any byte; encoded it must fit 250.
                (Just(command), flags, text_key(), vec(any::<u8>(), 1..=186), data())
            })
            .prop_map(|(command, flags, text_key, any_key, data)| {
                let base64 = flags.iter().any(|f| matches!(f, Flag::Plain(b'b')));
                let raw_flags = flags.iter().map(Flag::token).collect::<Vec<_>>().join(&b' ');
                let data = if command == MetaCommand::Set { data } else { Vec::new() };
                TextReq::Meta { command, key: if base64 { any_key } else { text_key }, data, flags, raw_flags }
            });
    prop_oneof![store, get, touch, delete, arith, meta, Just(TextReq::MetaNoop)]
}

impl TextReq {
    fn encode(&self) -> Vec<u8> {
        let noreply = |on: bool| if on { " noreply" } else { "" };
        let mut w = Vec::new();
        match self {
            TextReq::Store { command, key, flags, exptime, data, cas, noreply: nr } => {
                let name = match command {
                    StoreCommand::Set => "set",
                    StoreCommand::Add => "add",
                    StoreCommand::Replace => "replace",
                    StoreCommand::Append => "append",
                    StoreCommand::Prepend => "prepend",
                    StoreCommand::Cas => "cas",
                };
                w.extend_from_slice(format!("{name} ").as_bytes());
                w.extend_from_slice(key);
                w.extend_from_slice(format!(" {flags} {exptime} {}", data.len()).as_bytes());
                if *command == StoreCommand::Cas {
                    w.extend_from_slice(format!(" {cas}").as_bytes());
                }
                w.extend_from_slice(format!("{}\r\n", noreply(*nr)).as_bytes());
                w.extend_from_slice(data);
            }
            TextReq::Get { keys, cas, touch } => {
                w.extend_from_slice(if touch.is_some() { b"gat" } else { b"get" });
                if *cas {
                    w.push(b's');
                }
                if let Some(t) = touch {
                    w.extend_from_slice(format!(" {t}").as_bytes());
                }
                w.push(b' ');
                w.extend_from_slice(keys);
            }
            TextReq::Touch { key, exptime, noreply: nr } => {
                w.extend_from_slice(b"touch ");
                w.extend_from_slice(key);
                w.extend_from_slice(format!(" {exptime}{}", noreply(*nr)).as_bytes());
            }
            TextReq::Delete { key, noreply: nr } => {
                w.extend_from_slice(b"delete ");
                w.extend_from_slice(key);
                w.extend_from_slice(noreply(*nr).as_bytes());
            }
            TextReq::Arith { incr, key, delta, noreply: nr } => {
                w.extend_from_slice(if *incr { b"incr " } else { b"decr " });
                w.extend_from_slice(key);
                w.extend_from_slice(format!(" {delta}{}", noreply(*nr)).as_bytes());
            }
            TextReq::Meta { command, key, data, flags, raw_flags } => {
                let c = match command {
                    MetaCommand::Get => b'g',
                    MetaCommand::Set => b's',
                    MetaCommand::Delete => b'd',
                    MetaCommand::Arith => b'a',
                    MetaCommand::Debug => b'e',
                };
                w.extend_from_slice(&[b'm', c, b' ']);
                if flags.iter().any(|f| matches!(f, Flag::Plain(b'b'))) {
                    w.extend_from_slice(common::base64(key).as_bytes());
                } else {
                    w.extend_from_slice(key);
                }
                if *command == MetaCommand::Set {
                    w.extend_from_slice(format!(" {}", data.len()).as_bytes());
                }
                if !flags.is_empty() {
                    w.push(b' ');
                    w.extend_from_slice(raw_flags);
                }
                if *command == MetaCommand::Set {
                    w.extend_from_slice(b"\r\n");
                    w.extend_from_slice(data);
                }
            }
            TextReq::MetaNoop => w.extend_from_slice(b"mn"),
        }
        w.extend_from_slice(b"\r\n");
        w
    }

    fn expected(&self) -> Request<'_> {
        match self {
            TextReq::Store { command, key, flags, exptime, data, cas, noreply } => Request::Store {
                command: *command,
                key,
                flags: *flags,
                exptime: *exptime,
                data,
                cas: *cas,
                noreply: *noreply,
            },
            TextReq::Get { keys, cas, touch: None } => Request::Get { keys: Keys::list(keys), cas: *cas },
            TextReq::Get { keys, cas, touch: Some(exptime) } => {
                Request::Gat { exptime: *exptime, keys: Keys::list(keys), cas: *cas }
            }
            TextReq::Touch { key, exptime, noreply } => Request::Touch { key, exptime: *exptime, noreply: *noreply },
            TextReq::Delete { key, noreply } => Request::Delete { key, cas: 0, noreply: *noreply },
            TextReq::Arith { incr: true, key, delta, noreply } => {
                Request::Incr { key, delta: *delta, initial: None, cas: 0, noreply: *noreply }
            }
            TextReq::Arith { incr: false, key, delta, noreply } => {
                Request::Decr { key, delta: *delta, initial: None, cas: 0, noreply: *noreply }
            }
            TextReq::Meta { command, key, data, flags, raw_flags } => {
                let mut f = MetaFlags { raw: raw_flags, delta: 1, ..MetaFlags::default() };
                for flag in flags {
                    flag.apply(&mut f);
                }
                Request::Meta { command: *command, key: Cow::Borrowed(key), data, flags: f }
            }
            TextReq::MetaNoop => Request::MetaNoop,
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn text_requests_parse_back_whole_and_never_early(req in text_req()) {
        let wire = req.encode();
        check_framing(&wire, b"get next\r\n", &req.expected(), |b| text::parse(b, &LIMITS))?;
    }
}

// -------------------------------------------------------------- binary --

/// A binary request's extras, typed.
#[derive(Debug, Clone)]
enum Extras {
    None,
    /// GAT, TOUCH, FLUSH: an exptime; VERBOSITY: a level.
    Word(u32),
    Store {
        flags: u32,
        exptime: u32,
    },
    Arith {
        delta: u64,
        initial: u64,
        exptime: u32,
    },
}

#[derive(Debug, Clone)]
struct BinReq {
    opcode: u8,
    extras: Extras,
    key: Vec<u8>,
    value: Vec<u8>,
    cas: u64,
    opaque: u32,
}

fn bin_key() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 1..=250)
}

fn bin_req() -> impl Strategy<Value = BinReq> {
    let none = || Just(Extras::None);
    let word = || any::<u32>().prop_map(Extras::Word);
    let empty = || Just(Vec::new());
    let shapes = prop_oneof![
        (
            select(&[op::GET, op::GETQ, op::GETK, op::GETKQ, op::DELETE, op::DELETEQ][..]),
            none().boxed(),
            bin_key().boxed(),
            empty().boxed()
        ),
        (
            select(&[op::GAT, op::GATQ, op::GATK, op::GATKQ, op::TOUCH][..]),
            word().boxed(),
            bin_key().boxed(),
            empty().boxed()
        ),
        (
            select(&[op::SET, op::SETQ, op::ADD, op::ADDQ, op::REPLACE, op::REPLACEQ][..]),
            (any::<u32>(), any::<u32>()).prop_map(|(flags, exptime)| Extras::Store { flags, exptime }).boxed(),
            bin_key().boxed(),
            data().boxed(),
        ),
        (
            select(&[op::APPEND, op::APPENDQ, op::PREPEND, op::PREPENDQ][..]),
            none().boxed(),
            bin_key().boxed(),
            data().boxed()
        ),
        (
            select(&[op::INCREMENT, op::INCREMENTQ, op::DECREMENT, op::DECREMENTQ][..]),
            // An exptime of all ones: do not create.
            (any::<u64>(), any::<u64>(), prop_oneof![Just(u32::MAX), any::<u32>()])
                .prop_map(|(delta, initial, exptime)| Extras::Arith { delta, initial, exptime })
                .boxed(),
            bin_key().boxed(),
            empty().boxed(),
        ),
        (select(&[op::FLUSH, op::FLUSHQ][..]), prop_oneof![none(), word()].boxed(), empty().boxed(), empty().boxed()),
        (Just(op::VERBOSITY), word().boxed(), empty().boxed(), empty().boxed()),
        (Just(op::STAT), none().boxed(), vec(any::<u8>(), 0..=250).boxed(), empty().boxed()),
        (select(&[op::SASL_AUTH, op::SASL_STEP][..]), none().boxed(), bin_key().boxed(), data().boxed()),
        (
            select(&[op::NOOP, op::VERSION, op::QUIT, op::QUITQ, op::SASL_LIST_MECHS][..]),
            none().boxed(),
            empty().boxed(),
            empty().boxed()
        ),
    ];
    (shapes, prop_oneof![Just(0u64), any::<u64>()], any::<u32>())
        .prop_map(|((opcode, extras, key, value), cas, opaque)| BinReq { opcode, extras, key, value, cas, opaque })
}

/// Quiet opcodes, from memcached's binary protocol description.
const QUIET: &[u8] = &[
    op::GETQ,
    op::GETKQ,
    op::SETQ,
    op::ADDQ,
    op::REPLACEQ,
    op::DELETEQ,
    op::INCREMENTQ,
    op::DECREMENTQ,
    op::QUITQ,
    op::FLUSHQ,
    op::APPENDQ,
    op::PREPENDQ,
    op::GATQ,
    op::GATKQ,
];

impl BinReq {
    fn encode(&self) -> Vec<u8> {
        let mut extras = Vec::new();
        match self.extras {
            Extras::None => {}
            Extras::Word(w) => extras.extend_from_slice(&w.to_be_bytes()),
            Extras::Store { flags, exptime } => {
                extras.extend_from_slice(&flags.to_be_bytes());
                extras.extend_from_slice(&exptime.to_be_bytes());
            }
            Extras::Arith { delta, initial, exptime } => {
                extras.extend_from_slice(&delta.to_be_bytes());
                extras.extend_from_slice(&initial.to_be_bytes());
                extras.extend_from_slice(&exptime.to_be_bytes());
            }
        }
        let body = extras.len() + self.key.len() + self.value.len();
        let mut w = vec![0x80, self.opcode];
        w.extend_from_slice(&(self.key.len() as u16).to_be_bytes());
        w.push(extras.len() as u8);
        w.push(0); // data type
        w.extend_from_slice(&[0, 0]); // vbucket
        w.extend_from_slice(&(body as u32).to_be_bytes());
        w.extend_from_slice(&self.opaque.to_be_bytes());
        w.extend_from_slice(&self.cas.to_be_bytes());
        w.extend_from_slice(&extras);
        w.extend_from_slice(&self.key);
        w.extend_from_slice(&self.value);
        w
    }

    fn meta(&self) -> Meta {
        Meta {
            opcode: self.opcode,
            opaque: self.opaque,
            quiet: QUIET.contains(&self.opcode),
            return_key: [op::GETK, op::GETKQ, op::GATK, op::GATKQ].contains(&self.opcode),
        }
    }

    fn expected(&self) -> Request<'_> {
        let (key, value, cas) = (&self.key[..], &self.value[..], self.cas);
        let noreply = QUIET.contains(&self.opcode);
        let store = |command| {
            let (flags, exptime) = match self.extras {
                Extras::Store { flags, exptime } => (flags, i64::from(exptime)),
                _ => (0, 0),
            };
            // memcached turns an update carrying a CAS into a cas.
            let command =
                if cas != 0 && matches!(self.extras, Extras::Store { .. }) { StoreCommand::Cas } else { command };
            Request::Store { command, key, flags, exptime, data: value, cas, noreply }
        };
        let word = match self.extras {
            Extras::Word(w) => w,
            _ => 0,
        };
        match self.opcode {
            op::GET | op::GETQ | op::GETK | op::GETKQ => Request::Get { keys: Keys::one(key), cas: true },
            op::GAT | op::GATQ | op::GATK | op::GATKQ => {
                Request::Gat { exptime: i64::from(word), keys: Keys::one(key), cas: true }
            }
            op::TOUCH => Request::Touch { key, exptime: i64::from(word), noreply: false },
            op::SET | op::SETQ => store(StoreCommand::Set),
            op::ADD | op::ADDQ => store(StoreCommand::Add),
            op::REPLACE | op::REPLACEQ => store(StoreCommand::Replace),
            op::APPEND | op::APPENDQ => store(StoreCommand::Append),
            op::PREPEND | op::PREPENDQ => store(StoreCommand::Prepend),
            op::DELETE | op::DELETEQ => Request::Delete { key, cas, noreply },
            op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => {
                let Extras::Arith { delta, initial, exptime } = self.extras else { unreachable!() };
                let initial = (exptime != u32::MAX).then_some((initial, i64::from(exptime)));
                if matches!(self.opcode, op::INCREMENT | op::INCREMENTQ) {
                    Request::Incr { key, delta, initial, cas, noreply }
                } else {
                    Request::Decr { key, delta, initial, cas, noreply }
                }
            }
            op::FLUSH | op::FLUSHQ => Request::FlushAll { exptime: i64::from(word), noreply },
            op::VERBOSITY => Request::Verbosity { level: word, noreply: false },
            op::STAT => Request::Stats { args: key },
            op::SASL_AUTH => Request::SaslAuth { mech: key, data: value, step: false },
            op::SASL_STEP => Request::SaslAuth { mech: key, data: value, step: true },
            op::NOOP => Request::Noop,
            op::VERSION => Request::Version,
            op::QUIT | op::QUITQ => Request::Quit,
            op::SASL_LIST_MECHS => Request::SaslListMechs,
            other => unreachable!("opcode {other:#x} is not generated"),
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn binary_requests_parse_back_whole_and_never_early(req in bin_req()) {
        let wire = req.encode();
        let noop = BinReq { opcode: op::NOOP, extras: Extras::None, key: vec![], value: vec![], cas: 0, opaque: 7 };
        let next = noop.encode();
        prop_assert_eq!(binary::parse(&wire, &LIMITS).map(|(_, m, _)| m), Ok(req.meta()));
        check_framing(&wire, &next, &req.expected(), |b| binary::parse(b, &LIMITS).map(|(r, _, used)| (r, used)))?;
    }
}
