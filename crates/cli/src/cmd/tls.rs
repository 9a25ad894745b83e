//! `muster issuer tls ca|server|client`: the CA and the certificates of the broker connection
//! (docs/security.md, "The broker connection"). Each prints what it wrote and the lines that
//! use it in `muster broker`'s, nats-server's or a client's configuration.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use muster_client::ExitStatus;
use muster_security::pki::{self, Leaf, Made, Role};

use crate::args::{TlsCommand, TlsLeafArgs};
use crate::cmd::print;
use crate::failure::Failure;
use crate::render;

/// `muster issuer tls …`.
pub fn run(command: TlsCommand) -> Result<ExitStatus, Failure> {
    match command {
        TlsCommand::Ca { dir, name, valid } => {
            let made =
                pki::make_ca(&dir, &name, valid, SystemTime::now()).map_err(Failure::usage)?;
            print(|out| render::keys::tls_ca(out, &made, &dir))?;
        }
        TlsCommand::Server(args) => {
            let (mut dns_names, mut ips) = (Vec::new(), args.ips.clone());
            // `--name 10.0.0.1` is an address, and goes where clients look for addresses.
            for name in &args.names {
                match name.parse() {
                    Ok(ip) => ips.push(ip),
                    Err(_) => dns_names.push(name.clone()),
                }
            }
            let common_name = args
                .names
                .first()
                .cloned()
                .or_else(|| args.ips.first().map(|ip| ip.to_string()))
                .unwrap_or_default();
            let leaf = Leaf {
                role: Role::Server,
                common_name,
                dns_names,
                ips,
            };
            let made = make(&leaf, &args.leaf)?;
            let names: Vec<String> = (leaf.dns_names.iter().cloned())
                .chain(leaf.ips.iter().map(|ip| ip.to_string()))
                .collect();
            let paths = paths(&made, &args.leaf);
            print(|out| render::keys::tls_server(out, &made, &names, &paths))?;
        }
        TlsCommand::Client(args) => {
            let leaf = Leaf {
                role: Role::Client,
                common_name: args.name.clone(),
                dns_names: Vec::new(),
                ips: Vec::new(),
            };
            let made = make(&leaf, &args.leaf)?;
            let paths = paths(&made, &args.leaf);
            print(|out| render::keys::tls_client(out, &made, &args.name, &paths))?;
        }
    }
    Ok(ExitStatus::Ok)
}

fn make(leaf: &Leaf, args: &TlsLeafArgs) -> Result<Made, Failure> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&leaf.common_name));
    pki::make_leaf(&args.ca, leaf, &out, args.valid, SystemTime::now()).map_err(Failure::usage)
}

/// The absolute paths of what was made and of the CA's certificate.
fn paths(made: &Made, args: &TlsLeafArgs) -> render::keys::Paths {
    render::keys::Paths {
        cert: absolute(&made.cert),
        key: absolute(&made.key),
        ca: absolute(&args.ca.join(pki::CA_CERT)),
    }
}

/// The path as configuration files should hold it: absolute, since they are read from
/// elsewhere.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
