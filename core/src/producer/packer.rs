//! How user records become service records: KPL aggregation (Kinesis),
//! newline packing (Firehose), or one record each.

use bytes::{BufMut, BytesMut};

use crate::aggregation::Aggregator;
use crate::config::FirehoseFraming;
use crate::record::{UserRecord, detached};
use crate::sink::OutRecord;

/// The packing chosen for a stream, from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Packing {
    /// KPL aggregates of at most `max_size` bytes and `max_count` records.
    Kpl { max_size: usize, max_count: usize },
    /// Firehose records of user records each ending in `\n`, up to
    /// `max_size` bytes.
    Lines { max_size: usize },
    /// One service record per user record.
    Single { framing: FirehoseFraming },
}

/// Collects the user records of one shard until they make a service record.
#[derive(Debug)]
pub(crate) enum Packer {
    Kpl(Aggregator),
    Lines {
        max_size: usize,
        size: usize,
        records: Vec<UserRecord>,
    },
    Single {
        framing: FirehoseFraming,
        record: Option<UserRecord>,
    },
}

/// A finished service record.
pub(crate) struct Packed {
    pub(crate) record: OutRecord,
    pub(crate) aggregated: bool,
}

impl Packer {
    pub(crate) fn new(packing: Packing) -> Self {
        Self::with_capacity(packing, 0)
    }

    /// An empty packer with room for `records` user records.
    pub(crate) fn with_capacity(packing: Packing, records: usize) -> Self {
        match packing {
            Packing::Kpl {
                max_size,
                max_count,
            } => Packer::Kpl(Aggregator::with_capacity(max_size, max_count, records)),
            Packing::Lines { max_size } => Packer::Lines {
                max_size,
                size: 0,
                records: Vec::with_capacity(records),
            },
            Packing::Single { framing } => Packer::Single {
                framing,
                record: None,
            },
        }
    }

    /// Adds the record unless it would overflow; an empty packer takes any.
    pub(crate) fn try_add(&mut self, record: UserRecord) -> Result<(), UserRecord> {
        match self {
            Packer::Kpl(a) => a.try_add(record),
            Packer::Lines {
                max_size,
                size,
                records,
            } => {
                let framed = line_len(&record);
                if !records.is_empty() && *size + framed > *max_size {
                    return Err(record);
                }
                *size += framed;
                records.push(record);
                Ok(())
            }
            Packer::Single { record: slot, .. } => {
                if slot.is_some() {
                    return Err(record);
                }
                *slot = Some(record);
                Ok(())
            }
        }
    }

    /// True when nothing more can be added (so the record should go now).
    pub(crate) fn is_full(&self) -> bool {
        match self {
            Packer::Single { record, .. } => record.is_some(),
            _ => false,
        }
    }

    /// The service record made of what was added; `None` when empty.
    pub(crate) fn take(&mut self) -> Option<Packed> {
        match self {
            Packer::Kpl(a) => a.take().map(|(kinesis_record, _users)| Packed {
                aggregated: kinesis_record.aggregated,
                record: OutRecord {
                    partition_key: kinesis_record.partition_key.into(),
                    explicit_hash_key: kinesis_record.explicit_hash_key,
                    data: kinesis_record.data,
                },
            }),
            Packer::Lines { size, records, .. } => {
                if records.is_empty() {
                    return None;
                }
                let mut data = BytesMut::with_capacity(*size);
                for r in records.iter() {
                    data.put_slice(r.data());
                    if !r.data().ends_with(b"\n") {
                        data.put_u8(b'\n');
                    }
                }
                let aggregated = records.len() > 1;
                let first_key = records[0].partition_key().to_owned();
                records.clear();
                *size = 0;
                Some(Packed {
                    record: OutRecord {
                        partition_key: first_key.into(),
                        explicit_hash_key: None,
                        data: data.freeze(),
                    },
                    aggregated,
                })
            }
            Packer::Single { framing, record } => {
                let record = record.take()?;
                let (partition_key, explicit_hash_key, data) = record.into_key_parts();
                // A record sent alone may wait long after this (behind a
                // throttled shard, between retries). If its key or data is
                // a slice of a buffer shared with other records (Python's
                // `put_many` puts a whole call in one), holding it would
                // keep that whole buffer alive, beyond what the buffer cap
                // counts: copy such slices out. Aggregates and packed lines
                // copy their records when they are encoded.
                let partition_key = partition_key.detached();
                let data = match framing {
                    FirehoseFraming::Newline if !data.ends_with(b"\n") => {
                        let mut framed = BytesMut::with_capacity(data.len() + 1);
                        framed.put_slice(&data);
                        framed.put_u8(b'\n');
                        framed.freeze()
                    }
                    _ => detached(data),
                };
                Some(Packed {
                    record: OutRecord {
                        partition_key,
                        explicit_hash_key: explicit_hash_key.map(|k| k.to_string()),
                        data,
                    },
                    aggregated: false,
                })
            }
        }
    }

    /// Takes the user records back out without packing them (for re-routing
    /// after the shard map changed).
    pub(crate) fn drain_user_records(&mut self) -> Vec<UserRecord> {
        match self {
            Packer::Kpl(a) => a.take().map(|(_, users)| users).unwrap_or_default(),
            Packer::Lines { size, records, .. } => {
                *size = 0;
                std::mem::take(records)
            }
            Packer::Single { record, .. } => record.take().into_iter().collect(),
        }
    }
}

/// Size of a user record inside a packed Firehose record.
pub(crate) fn line_len(record: &UserRecord) -> usize {
    let data = record.data();
    data.len() + usize::from(!data.ends_with(b"\n"))
}

/// The size a user record will have on the wire as a Firehose record.
pub(crate) fn firehose_record_len(record: &UserRecord, packing: Packing) -> usize {
    match packing {
        Packing::Lines { .. }
        | Packing::Single {
            framing: FirehoseFraming::Newline,
        } => line_len(record),
        _ => record.data().len(),
    }
}

/// Recovers the user records carried by a service record.
pub(crate) fn unpack(record: &OutRecord, aggregated: bool) -> crate::Result<Vec<UserRecord>> {
    if !aggregated {
        let mut user = UserRecord::new(record.partition_key.as_str(), record.data.clone());
        if let Some(key) = &record.explicit_hash_key {
            user = user.with_explicit_hash_key_str(key)?;
        }
        return Ok(vec![user]);
    }
    crate::aggregation::deaggregate(
        record.partition_key.as_str(),
        record.explicit_hash_key.as_deref(),
        &record.data,
    )?
    .into_iter()
    .map(|d| {
        let user = UserRecord::new(d.partition_key, d.data);
        match d.explicit_hash_key {
            Some(key) => user.with_explicit_hash_key_str(&key),
            None => Ok(user),
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::PartitionKey;

    fn single() -> Packer {
        Packer::new(Packing::Single {
            framing: FirehoseFraming::None,
        })
    }

    fn within(inner: &[u8], outer: &Bytes) -> bool {
        outer.as_ptr_range().contains(&inner.as_ptr())
    }

    #[test]
    fn a_record_sent_alone_lets_go_of_a_buffer_others_share() {
        // Two records' keys and data in one buffer, as Python's put_many
        // makes them; the other record still holds the buffer.
        let buffer = Bytes::from(b"key-1key-2data".to_vec());
        let other = UserRecord::with_shared_key(buffer.slice(0..5), buffer.slice(10..)).unwrap();
        let record = UserRecord::with_shared_key(buffer.slice(5..10), buffer.slice(10..)).unwrap();
        let mut packer = single();
        assert!(packer.try_add(record).is_ok());
        let packed = packer.take().unwrap().record;
        assert!(matches!(packed.partition_key, PartitionKey::Owned(_)));
        assert_eq!(packed.partition_key.as_str(), "key-2");
        assert_eq!(packed.data, "data");
        assert!(!within(&packed.data, &buffer));
        drop(other);
    }

    #[test]
    fn a_record_sent_alone_keeps_bytes_nobody_else_holds() {
        let key = Bytes::from(b"key-2".to_vec());
        let data = Bytes::from(b"data".to_vec());
        let (key_at, data_at) = (key.as_ptr(), data.as_ptr());
        let record = UserRecord::with_shared_key(key, data).unwrap();
        let mut packer = single();
        assert!(packer.try_add(record).is_ok());
        let packed = packer.take().unwrap().record;
        // Moved, not copied.
        assert!(matches!(packed.partition_key, PartitionKey::Shared(_)));
        assert_eq!(packed.partition_key.as_str().as_ptr(), key_at);
        assert_eq!(packed.data.as_ptr(), data_at);
    }
}
