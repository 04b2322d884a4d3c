//! How user records become service records: KPL aggregation (Kinesis),
//! newline packing (Firehose), or one record each.

use bytes::{BufMut, Bytes, BytesMut};

use crate::aggregation::Aggregator;
use crate::config::FirehoseFraming;
use crate::record::UserRecord;
use crate::sink::OutRecord;

/// The packing chosen for a stream, from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Packing {
    /// KPL aggregates of at most `max_size` bytes and `max_count` records
    /// of at most `max_record_size` billed bytes each.
    Kpl {
        max_size: usize,
        max_count: usize,
        max_record_size: usize,
    },
    /// Firehose records of user records each ending in `\n`, up to
    /// `max_size` bytes.
    Lines { max_size: usize },
    /// One service record per user record.
    Single { framing: FirehoseFraming },
}

impl Packing {
    /// True when `record` should be sealed as a service record of its own
    /// on arrival, rather than wait in its shard's packer.
    ///
    /// A large record gains nothing from sharing a KPL aggregate: above
    /// about 1 KiB a shard's byte quota binds before its record quota, and
    /// from a few KiB a PutRecords call of plain records carries megabytes
    /// too, while aggregating costs a copy and an MD5 of every byte (see
    /// `Config::aggregation_max_record_size`). It does not seal the
    /// aggregate being filled either: with large and small records mixed,
    /// that would cut every aggregate short and spend the shard's record
    /// quota. So it can be stored before smaller records sent earlier to the
    /// same shard (it never holds them back: see the dispatcher's
    /// `push_back_in_due_order`).
    pub(crate) fn sends_alone(&self, record: &UserRecord) -> bool {
        match *self {
            Packing::Kpl {
                max_record_size, ..
            } => record.billed_size() > max_record_size,
            _ => false,
        }
    }
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
                ..
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
            Packer::Kpl(a) => a.take().map(|(kinesis_record, users)| {
                // An aggregate's data is its own; a record that goes out
                // alone is its user record's data, copied out of a shared
                // buffer as in `Packer::Single`.
                let data = match users.as_slice() {
                    [single] if single.in_shared_buffer() => {
                        Bytes::copy_from_slice(&kinesis_record.data)
                    }
                    _ => kinesis_record.data,
                };
                Packed {
                    aggregated: kinesis_record.aggregated,
                    record: OutRecord {
                        partition_key: kinesis_record.partition_key,
                        explicit_hash_key: kinesis_record.explicit_hash_key,
                        data,
                    },
                }
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
                        partition_key: first_key,
                        explicit_hash_key: None,
                        data: data.freeze(),
                    },
                    aggregated,
                })
            }
            Packer::Single { framing, record } => {
                let record = record.take()?;
                // A record sent alone may wait long after this (behind a
                // throttled shard, between retries). If it was made with
                // `UserRecord::with_shared_key`, its key and data are slices
                // of a buffer that Python's `put_many` filled with a whole
                // call, and holding them would keep all of it alive, beyond
                // what the buffer cap counts: copy them out (`into_parts`
                // copies a shared key). Decided by where the record came
                // from, not by the buffer's reference count: a call's last
                // record is the buffer's only holder and still holds all of
                // it. Aggregates and packed lines are copies already.
                let shared = record.in_shared_buffer();
                let (partition_key, explicit_hash_key, data) = record.into_parts();
                let data = match framing {
                    FirehoseFraming::Newline if !data.ends_with(b"\n") => {
                        let mut framed = BytesMut::with_capacity(data.len() + 1);
                        framed.put_slice(&data);
                        framed.put_u8(b'\n');
                        framed.freeze()
                    }
                    _ if shared => Bytes::copy_from_slice(&data),
                    _ => data,
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
        let mut user = UserRecord::new(record.partition_key.clone(), record.data.clone());
        if let Some(key) = &record.explicit_hash_key {
            user = user.with_explicit_hash_key_str(key)?;
        }
        return Ok(vec![user]);
    }
    crate::aggregation::deaggregate(
        &record.partition_key,
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
    use std::ops::Range;

    use bytes::Bytes;

    use super::*;

    fn single(framing: FirehoseFraming) -> Packer {
        Packer::new(Packing::Single { framing })
    }

    fn kpl() -> Packer {
        Packer::new(Packing::Kpl {
            max_size: 50 * 1024,
            max_count: 1000,
            max_record_size: 4096,
        })
    }

    /// Two records' keys and data in one buffer, as Python's put_many
    /// makes them (the second with an explicit hash key); returns the
    /// buffer's address range and the records.
    fn shared_records() -> (Range<usize>, UserRecord, UserRecord) {
        let buffer = Bytes::from(b"key-1data-1key-2data-2".to_vec());
        let start = buffer.as_ptr() as usize;
        let first = UserRecord::with_shared_key(buffer.slice(0..5), buffer.slice(5..11)).unwrap();
        let second = UserRecord::with_shared_key(buffer.slice(11..16), buffer.slice(16..))
            .unwrap()
            .with_explicit_hash_key(7);
        (start..start + buffer.len(), first, second)
    }

    fn outside(bytes: &[u8], range: &Range<usize>) -> bool {
        !range.contains(&(bytes.as_ptr() as usize))
    }

    #[test]
    fn a_record_sent_alone_lets_go_of_its_shared_buffer() {
        for framing in [FirehoseFraming::None, FirehoseFraming::Newline] {
            let (buffer, first, second) = shared_records();
            let mut packer = single(framing);
            assert!(packer.try_add(first).is_ok());
            let packed = packer.take().unwrap();
            assert!(!packed.aggregated);
            assert_eq!(packed.record.partition_key, "key-1");
            assert!(packed.record.data.starts_with(b"data-1"));
            assert!(outside(&packed.record.data, &buffer));
            // The call's last record is the buffer's only holder, and is
            // copied all the same: it would otherwise keep the whole buffer.
            assert!(packer.try_add(second).is_ok());
            let packed = packer.take().unwrap().record;
            assert_eq!(packed.partition_key, "key-2");
            assert_eq!(packed.explicit_hash_key.as_deref(), Some("7"));
            assert!(packed.data.starts_with(b"data-2"));
            assert!(outside(&packed.data, &buffer));
        }
    }

    #[test]
    fn the_only_record_of_an_aggregate_lets_go_of_its_shared_buffer() {
        let (buffer, first, second) = shared_records();
        let mut packer = kpl();
        assert!(packer.try_add(first).is_ok());
        let packed = packer.take().unwrap();
        assert!(!packed.aggregated);
        assert_eq!(packed.record.data, "data-1");
        assert!(outside(&packed.record.data, &buffer));
        // Two records make an aggregate, encoded into bytes of its own.
        let (other_buffer, third, _fourth) = shared_records();
        assert!(packer.try_add(second).is_ok());
        assert!(packer.try_add(third).is_ok());
        let packed = packer.take().unwrap();
        assert!(packed.aggregated);
        assert!(outside(&packed.record.data, &buffer));
        assert!(outside(&packed.record.data, &other_buffer));
    }

    #[test]
    fn a_record_sent_alone_moves_bytes_of_its_own() {
        let data = Bytes::from_static(b"data");
        let record = UserRecord::new("key", data.clone());
        let key_at = record.partition_key().as_ptr();
        let mut packer = single(FirehoseFraming::None);
        assert!(packer.try_add(record).is_ok());
        let packed = packer.take().unwrap().record;
        assert_eq!(
            packed.data.as_ptr(),
            data.as_ptr(),
            "data moved, not copied"
        );
        assert_eq!(
            packed.partition_key.as_ptr(),
            key_at,
            "key moved, not copied"
        );
        // The only record of an aggregate goes out as it came.
        let mut packer = kpl();
        assert!(packer.try_add(UserRecord::new("key", data.clone())).is_ok());
        let packed = packer.take().unwrap();
        assert!(!packed.aggregated);
        assert_eq!(
            packed.record.data.as_ptr(),
            data.as_ptr(),
            "data moved, not copied"
        );
    }
}
