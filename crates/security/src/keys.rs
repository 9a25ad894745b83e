//! ed25519 key pairs in PEM files.
//!
//! A private key is a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`), written with mode 0600
//! and refused when it can be read by anyone but its owner; a public key is an SPKI PEM file
//! (`-----BEGIN PUBLIC KEY-----`). `openssl pkey -in key.pem -pubout` gives the same public key.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// A key file could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The private key file can be read by others.
    #[error(
        "{path} can be read by others (mode {mode:o}): a private key must be readable by its owner only; run chmod 600 {path}"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a key of the expected kind.
    #[error("{path} is not an ed25519 {what} in PEM: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// `private key` or `public key`.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A public key given as text is not 32 bytes of base64.
    #[error("invalid public key {text:?}: {message}")]
    Text {
        /// The text (cut short).
        text: String,
        /// Why.
        message: String,
    },
}

/// A private signing key.
pub struct SecretKey(SigningKey);

/// A public key: verifies what its secret key signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

fn io(path: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl SecretKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key whose 32 secret bytes are `seed` (for tests and fuzzing).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `bytes`; the signature in base64.
    pub fn sign(&self, bytes: &[u8]) -> String {
        STANDARD.encode(self.0.sign(bytes).to_bytes())
    }

    /// The key as a PKCS#8 PEM document, in its first version (RFC 8410 without the public
    /// key beside the private one), which every tool reads, OpenSSL 3.0 among them.
    pub fn to_pem(&self) -> String {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        // Encoding 32 bytes into a fixed structure does not fail.
        bytes
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default()
    }

    /// Reads a private key file, refusing one that group or others can read.
    pub fn read(path: &Path) -> Result<SecretKey, KeyError> {
        let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        SigningKey::from_pkcs8_pem(&text)
            .map(SecretKey)
            .map_err(|e| KeyError::Format {
                path: path.to_path_buf(),
                what: "private key",
                message: e.to_string(),
            })
    }

    /// Writes the key to a new file with mode 0600; an existing file is not overwritten.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io(path, e))?;
        file.write_all(self.to_pem().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io(path, e))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

impl PublicKey {
    /// Whether `signature` (base64) is this key's signature over `bytes`. Strict verification:
    /// malleable and small-order signatures are refused.
    pub fn verifies(&self, bytes: &[u8], signature: &str) -> bool {
        let Ok(raw) = STANDARD.decode(signature) else {
            return false;
        };
        let Ok(raw) = <[u8; 64]>::try_from(raw.as_slice()) else {
            return false;
        };
        self.0
            .verify_strict(bytes, &Signature::from_bytes(&raw))
            .is_ok()
    }

    /// The key as base64 of its 32 bytes (how credentials carry it).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// A key from base64 of its 32 bytes.
    pub fn from_base64(text: &str) -> Result<PublicKey, KeyError> {
        let fail = |message: String| KeyError::Text {
            text: text.chars().take(64).collect(),
            message,
        };
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|e| fail(e.to_string()))?;
        let raw = <[u8; 32]>::try_from(raw.as_slice())
            .map_err(|_| fail(format!("{} bytes, not 32", raw.len())))?;
        VerifyingKey::from_bytes(&raw)
            .map(PublicKey)
            .map_err(|e| fail(e.to_string()))
    }

    /// The key as an SPKI PEM document.
    pub fn to_pem(&self) -> String {
        self.0.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// Reads a public key file (SPKI PEM).
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        VerifyingKey::from_public_key_pem(&text)
            .map(PublicKey)
            .map_err(|e| KeyError::Format {
                path: path.to_path_buf(),
                what: "public key",
                message: e.to_string(),
            })
    }

    /// Writes the key to a file (mode 0644), replacing it.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        std::fs::write(path, self.to_pem()).map_err(|e| io(path, e))
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_files_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let path = dir.path().join("key.pem");
        key.write_new(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(key.write_new(&path).is_err(), "never overwrites a key");
        let back = SecretKey::read(&path).unwrap();
        assert_eq!(back.public(), key.public());
        let public = dir.path().join("key.pub");
        key.public().write(&public).unwrap();
        let pk = PublicKey::read(&public).unwrap();
        let sig = back.sign(b"hello");
        assert!(pk.verifies(b"hello", &sig));
        assert!(!pk.verifies(b"hellO", &sig));
        assert!(!pk.verifies(b"hello", "not base64!"));
        assert!(!pk.verifies(b"hello", &STANDARD.encode([0u8; 64])));
        assert_eq!(PublicKey::from_base64(&pk.to_base64()).unwrap(), pk);
        assert!(PublicKey::from_base64("AAAA").is_err());
        assert!(
            PublicKey::read(&path).is_err(),
            "a private key is not a public key"
        );
        // Keys written with the public key beside the private one (PKCS#8 v2) read too.
        let v2 = key.0.to_pkcs8_pem(LineEnding::LF).unwrap();
        let v2_path = dir.path().join("v2.pem");
        std::fs::write(&v2_path, v2.as_bytes()).unwrap();
        std::fs::set_permissions(&v2_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SecretKey::read(&v2_path).unwrap().public(), key.public());
        assert!(
            key.to_pem().len() < v2.len(),
            "written as PKCS#8 v1, without the public key"
        );
    }

    #[test]
    fn a_private_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        SecretKey::generate().write_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretKey::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("can be read by others") && err.contains("chmod 600"),
            "{err}"
        );
    }
}
