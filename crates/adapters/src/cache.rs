//! The cache port and its in-process implementation.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A byte cache with expiry.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Option<Vec<u8>>;
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration);
    async fn delete(&self, key: &str);
}

/// A map in this process's memory.
#[derive(Default)]
pub struct InProcess {
    map: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
}

#[async_trait]
impl Cache for InProcess {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut map = self.map.lock().unwrap();
        match map.get(key) {
            Some((until, v)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        self.map
            .lock()
            .unwrap()
            .insert(key.to_string(), (Instant::now() + ttl, value));
    }
    async fn delete(&self, key: &str) {
        self.map.lock().unwrap().remove(key);
    }
}
