//! Prints the number of lines, bytes and the 64-bit FNV-1a hash of a file.
use std::env;
use std::fs;
use std::process;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

fn main() {
    let path = match env::args().nth(1) {
        Some(p) => p,
        None => {
            eprintln!("usage: checksum FILE");
            process::exit(2);
        }
    };
    let bytes = fs::read(&path).unwrap_or_else(|e| {
        eprintln!("checksum: cannot read {}: {}", path, e);
        process::exit(1);
    });
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    println!("file\t{}\nlines\t{}\nbytes\t{}\nfnv1a64\t{:016x}", path, lines, bytes.len(), fnv1a(&bytes));
}
