//! The Nexmark event generator: the online-auction stream of the Nexmark benchmark (people
//! registering, auctions opening, bids), as Apache Beam's `NexmarkGenerator` and the Flink and
//! Arroyo ports define it, deterministic from a seed and the event number.
//!
//! Event `n` (from 0) is a person, an auction or a bid by its place in each run of 50 events
//! (1 person, then 3 auctions, then 46 bids: the standard 1 : 3 : 46 mix). Its fields come from
//! a random stream seeded by `(seed, n)` alone, and its time is `BASE_TIME + n / rate`, so any
//! range of event numbers regenerates the same events, in any order and on any machine.
//!
//! The distributions follow the standard generator's defaults: ids from 1000; a bid goes to a
//! hot auction (the latest multiple of 100 among the auctions so far) half the time and is made
//! by a hot bidder three times in four; an auction's seller is a hot seller three times in
//! four; otherwise ids are drawn from the last 1000 people and the last 100 auctions (bids
//! also up to 10 auctions ahead, as in Beam). Prices are `round(10^(6u) * 100)` cents-like
//! units for `u` uniform in `[0, 1)`; categories 10 to 14; `extra` pads each event to the
//! standard average sizes (person 200 bytes, auction 500, bid 100).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// Event time of event 0: 2015-07-15T00:00:00Z, in milliseconds since the Unix epoch (a fixed
/// base, so the same range has the same times whenever it is generated).
pub const BASE_TIME_MS: i64 = 1_436_918_400_000;

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;
const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const BID_PROPORTION: u64 = 46;
const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;
/// Hot ids are the multiples of this among the ids so far.
const HOT_RATIO_BASE: u64 = 100;
/// One in this many bids goes to a hot auction's complement (Beam's `hotAuctionRatio` 2).
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_SELLER_RATIO: u64 = 4;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const AUCTION_ID_LEAD: u64 = 10;
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;

const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const US_STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];

/// The three kinds of event, and the table each makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// A person registering (`person`).
    Person,
    /// An auction opening (`auction`).
    Auction,
    /// A bid on an auction (`bid`).
    Bid,
}

impl Table {
    /// Every table, in event order within a run of 50.
    pub const ALL: [Table; 3] = [Table::Person, Table::Auction, Table::Bid];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Person => "person",
            Table::Auction => "auction",
            Table::Bid => "bid",
        }
    }

    /// The table named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The kind of event `n`.
    pub fn of_event(n: u64) -> Self {
        match n % TOTAL_PROPORTION {
            r if r < PERSON_PROPORTION => Table::Person,
            r if r < PERSON_PROPORTION + AUCTION_PROPORTION => Table::Auction,
            _ => Table::Bid,
        }
    }

    /// The columns of the table (those of the Flink and Arroyo Nexmark tables); times are
    /// milliseconds, as Flink's `TIMESTAMP(3)`.
    pub fn schema(self) -> SchemaRef {
        let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
        let field = |name: &str, ty: DataType| Field::new(name, ty, false);
        Arc::new(Schema::new(match self {
            Table::Person => vec![
                field("id", DataType::Int64),
                field("name", DataType::Utf8),
                field("email_address", DataType::Utf8),
                field("credit_card", DataType::Utf8),
                field("city", DataType::Utf8),
                field("state", DataType::Utf8),
                field("date_time", ts()),
                field("extra", DataType::Utf8),
            ],
            Table::Auction => vec![
                field("id", DataType::Int64),
                field("item_name", DataType::Utf8),
                field("description", DataType::Utf8),
                field("initial_bid", DataType::Int64),
                field("reserve", DataType::Int64),
                field("date_time", ts()),
                field("expires", ts()),
                field("seller", DataType::Int64),
                field("category", DataType::Int64),
                field("extra", DataType::Utf8),
            ],
            Table::Bid => vec![
                field("auction", DataType::Int64),
                field("bidder", DataType::Int64),
                field("price", DataType::Int64),
                field("channel", DataType::Utf8),
                field("url", DataType::Utf8),
                field("date_time", ts()),
                field("extra", DataType::Utf8),
            ],
        }))
    }
}

/// The generator's settings: what makes a range's events the same every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generator {
    /// The seed of every event's random stream.
    pub seed: u64,
    /// Events per second of event time (at least 1).
    pub events_per_second: u64,
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast, well-mixed generator; one stream per
/// event, from the seed and the event number.
struct Random(u64);

impl Random {
    /// Event `n`'s stream: its start is the seed and `n` each put through SplitMix64's
    /// finalizer, so the streams of neighbouring events do not overlap (a start of
    /// `seed ^ n * step` would make event `n + 1`'s draws event `n`'s, one later).
    fn for_event(seed: u64, n: u64) -> Self {
        Random(mix(mix(seed) ^ n))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` at least 1).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    /// `len` random lowercase letters.
    fn letters(&mut self, out: &mut String, len: usize) {
        for _ in 0..len {
            out.push((b'a' + self.below(26) as u8) as char);
        }
    }

    /// A price: `round(10^(6u) * 100)`, as Beam's `nextPrice`.
    fn price(&mut self) -> i64 {
        (10f64.powf(self.unit() * 6.0) * 100.0).round() as i64
    }

    /// Padding that brings an event of `current` bytes to about `average` (Beam's
    /// `nextExtra`: a random length around the shortfall).
    fn extra(&mut self, current: usize, average: usize) -> String {
        let mut out = String::new();
        if current < average {
            let short = average - current;
            let len = short * 9 / 10 + self.below((short / 5 + 1) as u64) as usize;
            self.letters(&mut out, len);
        }
        out
    }
}

/// SplitMix64's finalizer: a bijection of 64-bit words that mixes every bit into every other.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 0-based number of the last person at or before event `n`: one person opens each run
/// of 50 events.
fn last_base0_person(n: u64) -> u64 {
    const _: () = assert!(PERSON_PROPORTION == 1, "one person per run of events");
    n / TOTAL_PROPORTION
}

/// The 0-based number of the last auction at or before event `n` (0 before the first).
fn last_base0_auction(n: u64) -> u64 {
    let mut epoch = n / TOTAL_PROPORTION;
    let mut offset = n % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        // Before this run's auctions: the last of the previous run's.
        if epoch == 0 {
            return 0;
        }
        epoch -= 1;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

/// A person among the last `NUM_ACTIVE_PEOPLE` at event `n`.
fn active_person(r: &mut Random, n: u64) -> u64 {
    let people = last_base0_person(n) + 1;
    let active = people.min(NUM_ACTIVE_PEOPLE);
    people - active + r.below(active)
}

impl Generator {
    /// The event time of event `n`, in milliseconds since the Unix epoch.
    pub fn time_ms(&self, n: u64) -> i64 {
        let offset = u128::from(n) * 1000 / u128::from(self.events_per_second.max(1));
        BASE_TIME_MS.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    /// The events of `table` among events `from..to`, as record batches of at most
    /// `batch_rows` rows each.
    pub fn generate(
        &self,
        table: Table,
        from: u64,
        to: u64,
        batch_rows: usize,
    ) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut out = Vec::new();
        let mut rows = Rows::new(table);
        for n in (from..to).filter(|n| Table::of_event(*n) == table) {
            self.event(n, &mut rows);
            if rows.len_of() == batch_rows.max(1) {
                out.push(std::mem::replace(&mut rows, Rows::new(table)).finish()?);
            }
        }
        if rows.len_of() > 0 {
            out.push(rows.finish()?);
        }
        Ok(out)
    }

    /// Appends event `n` to `rows` (of its table).
    fn event(&self, n: u64, rows: &mut Rows) {
        let mut r = Random::for_event(self.seed, n);
        let time = self.time_ms(n);
        match rows {
            Rows::Person { .. } => self.person(n, time, &mut r, rows),
            Rows::Auction { .. } => self.auction(n, time, &mut r, rows),
            Rows::Bid { .. } => self.bid(n, time, &mut r, rows),
        }
    }

    fn person(&self, n: u64, time: i64, r: &mut Random, rows: &mut Rows) {
        let Rows::Person {
            id,
            name,
            email,
            card,
            city,
            state,
            date_time,
            extra,
            len,
        } = rows
        else {
            unreachable!("a person's rows");
        };
        let full_name = format!("{} {}", r.pick(FIRST_NAMES), r.pick(LAST_NAMES));
        let mut address = String::new();
        r.letters(&mut address, 7);
        address.push('@');
        r.letters(&mut address, 5);
        address.push_str(".com");
        let credit = (0..4)
            .map(|_| format!("{:04}", r.below(10_000)))
            .collect::<Vec<_>>()
            .join(" ");
        let (c, s) = (r.pick(US_CITIES), r.pick(US_STATES));
        let size = 8 + full_name.len() + address.len() + credit.len() + c.len() + s.len() + 8;
        id.append_value(FIRST_PERSON_ID + last_base0_person(n) as i64);
        name.append_value(&full_name);
        email.append_value(&address);
        card.append_value(&credit);
        city.append_value(c);
        state.append_value(s);
        date_time.append_value(time);
        extra.append_value(r.extra(size, AVG_PERSON_BYTES));
        *len += 1;
    }

    fn auction(&self, n: u64, time: i64, r: &mut Random, rows: &mut Rows) {
        let Rows::Auction {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time,
            expires,
            seller,
            category,
            extra,
            len,
        } = rows
        else {
            unreachable!("an auction's rows");
        };
        let seller_id = if r.below(HOT_SELLER_RATIO) > 0 {
            (last_base0_person(n) / HOT_RATIO_BASE) * HOT_RATIO_BASE
        } else {
            active_person(r, n)
        };
        let initial = r.price();
        let reserve_price = initial + r.price();
        // An auction stays open about as long as the auctions in flight take to be replaced:
        // uniform up to twice that.
        let in_flight_ms = NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION * 1000
            / self.events_per_second.max(1);
        let length_ms = r.below(2 * in_flight_ms.max(1) + 1) as i64;
        let mut item = String::new();
        r.letters(&mut item, 20);
        let mut about = String::new();
        r.letters(&mut about, 100);
        let size = 8 + item.len() + about.len() + 8 + 8 + 8 + 8 + 8 + 8;
        id.append_value(FIRST_AUCTION_ID + last_base0_auction(n) as i64);
        item_name.append_value(&item);
        description.append_value(&about);
        initial_bid.append_value(initial);
        reserve.append_value(reserve_price);
        date_time.append_value(time);
        expires.append_value(time.saturating_add(length_ms));
        seller.append_value(FIRST_PERSON_ID + seller_id as i64);
        category.append_value(FIRST_CATEGORY_ID + r.below(NUM_CATEGORIES) as i64);
        extra.append_value(r.extra(size, AVG_AUCTION_BYTES));
        *len += 1;
    }

    fn bid(&self, n: u64, time: i64, r: &mut Random, rows: &mut Rows) {
        let Rows::Bid {
            auction,
            bidder,
            price,
            channel,
            url,
            date_time,
            extra,
            len,
        } = rows
        else {
            unreachable!("a bid's rows");
        };
        let last_auction = last_base0_auction(n);
        let auction_id = if r.below(HOT_AUCTION_RATIO) > 0 {
            (last_auction / HOT_RATIO_BASE) * HOT_RATIO_BASE
        } else {
            let min = last_auction.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
            min + r.below(last_auction - min + 1 + AUCTION_ID_LEAD)
        };
        let bidder_id = if r.below(HOT_BIDDER_RATIO) > 0 {
            (last_base0_person(n) / HOT_RATIO_BASE) * HOT_RATIO_BASE + 1
        } else {
            active_person(r, n)
        };
        let amount = r.price();
        let (name, link) = if r.below(10) < 9 {
            let name = r.pick(CHANNELS);
            let mut link = format!(
                "https://www.nexmark.com/{}/item.htm?query=1",
                name.to_lowercase()
            );
            if name == "Apple" {
                link.push_str("&channel_id=");
                link.push_str(&r.below(1_000).to_string());
            }
            (name.to_string(), link)
        } else {
            let number = r.below(10_000);
            let mut path = String::new();
            r.letters(&mut path, 5);
            (
                format!("channel-{number}"),
                format!("https://www.nexmark.com/{path}/item.htm?query=1&channel_id={number}"),
            )
        };
        let size = 8 + 8 + 8 + name.len() + link.len() + 8;
        auction.append_value(FIRST_AUCTION_ID + auction_id as i64);
        bidder.append_value(FIRST_PERSON_ID + bidder_id as i64);
        price.append_value(amount);
        channel.append_value(&name);
        url.append_value(&link);
        date_time.append_value(time);
        extra.append_value(r.extra(size, AVG_BID_BYTES));
        *len += 1;
    }
}

/// The column builders of one table's rows (one value per `generate` call, so the variants'
/// sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum Rows {
    Person {
        id: Int64Builder,
        name: StringBuilder,
        email: StringBuilder,
        card: StringBuilder,
        city: StringBuilder,
        state: StringBuilder,
        date_time: TimestampMillisecondBuilder,
        extra: StringBuilder,
        len: usize,
    },
    Auction {
        id: Int64Builder,
        item_name: StringBuilder,
        description: StringBuilder,
        initial_bid: Int64Builder,
        reserve: Int64Builder,
        date_time: TimestampMillisecondBuilder,
        expires: TimestampMillisecondBuilder,
        seller: Int64Builder,
        category: Int64Builder,
        extra: StringBuilder,
        len: usize,
    },
    Bid {
        auction: Int64Builder,
        bidder: Int64Builder,
        price: Int64Builder,
        channel: StringBuilder,
        url: StringBuilder,
        date_time: TimestampMillisecondBuilder,
        extra: StringBuilder,
        len: usize,
    },
}

impl Rows {
    fn new(table: Table) -> Self {
        match table {
            Table::Person => Rows::Person {
                id: Int64Builder::new(),
                name: StringBuilder::new(),
                email: StringBuilder::new(),
                card: StringBuilder::new(),
                city: StringBuilder::new(),
                state: StringBuilder::new(),
                date_time: TimestampMillisecondBuilder::new(),
                extra: StringBuilder::new(),
                len: 0,
            },
            Table::Auction => Rows::Auction {
                id: Int64Builder::new(),
                item_name: StringBuilder::new(),
                description: StringBuilder::new(),
                initial_bid: Int64Builder::new(),
                reserve: Int64Builder::new(),
                date_time: TimestampMillisecondBuilder::new(),
                expires: TimestampMillisecondBuilder::new(),
                seller: Int64Builder::new(),
                category: Int64Builder::new(),
                extra: StringBuilder::new(),
                len: 0,
            },
            Table::Bid => Rows::Bid {
                auction: Int64Builder::new(),
                bidder: Int64Builder::new(),
                price: Int64Builder::new(),
                channel: StringBuilder::new(),
                url: StringBuilder::new(),
                date_time: TimestampMillisecondBuilder::new(),
                extra: StringBuilder::new(),
                len: 0,
            },
        }
    }

    fn finish(self) -> Result<RecordBatch, ArrowError> {
        let (table, columns): (Table, Vec<ArrayRef>) = match self {
            Rows::Person {
                mut id,
                mut name,
                mut email,
                mut card,
                mut city,
                mut state,
                mut date_time,
                mut extra,
                ..
            } => (
                Table::Person,
                vec![
                    Arc::new(id.finish()),
                    Arc::new(name.finish()),
                    Arc::new(email.finish()),
                    Arc::new(card.finish()),
                    Arc::new(city.finish()),
                    Arc::new(state.finish()),
                    Arc::new(date_time.finish()),
                    Arc::new(extra.finish()),
                ],
            ),
            Rows::Auction {
                mut id,
                mut item_name,
                mut description,
                mut initial_bid,
                mut reserve,
                mut date_time,
                mut expires,
                mut seller,
                mut category,
                mut extra,
                ..
            } => (
                Table::Auction,
                vec![
                    Arc::new(id.finish()),
                    Arc::new(item_name.finish()),
                    Arc::new(description.finish()),
                    Arc::new(initial_bid.finish()),
                    Arc::new(reserve.finish()),
                    Arc::new(date_time.finish()),
                    Arc::new(expires.finish()),
                    Arc::new(seller.finish()),
                    Arc::new(category.finish()),
                    Arc::new(extra.finish()),
                ],
            ),
            Rows::Bid {
                mut auction,
                mut bidder,
                mut price,
                mut channel,
                mut url,
                mut date_time,
                mut extra,
                ..
            } => (
                Table::Bid,
                vec![
                    Arc::new(auction.finish()),
                    Arc::new(bidder.finish()),
                    Arc::new(price.finish()),
                    Arc::new(channel.finish()),
                    Arc::new(url.finish()),
                    Arc::new(date_time.finish()),
                    Arc::new(extra.finish()),
                ],
            ),
        };
        RecordBatch::try_new(table.schema(), columns)
    }
}

impl Rows {
    /// Rows appended so far.
    fn len_of(&self) -> usize {
        match self {
            Rows::Person { len, .. } | Rows::Auction { len, .. } | Rows::Bid { len, .. } => *len,
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};

    use super::*;

    const GENERATOR: Generator = Generator {
        seed: 7,
        events_per_second: 1000,
    };

    fn int_column(batches: &[RecordBatch], name: &str) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column_by_name(name)
                    .expect("column")
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn the_mix_is_one_person_three_auctions_and_46_bids_in_every_50_events() {
        let rows = |t: Table, from: u64, to: u64| -> usize {
            GENERATOR
                .generate(t, from, to, 1000)
                .expect("generate")
                .iter()
                .map(RecordBatch::num_rows)
                .sum()
        };
        assert_eq!(rows(Table::Person, 0, 50_000), 1000);
        assert_eq!(rows(Table::Auction, 0, 50_000), 3000);
        assert_eq!(rows(Table::Bid, 0, 50_000), 46_000);
        // Ids count up from 1000 with no gap: the person of event 50 is the second one.
        let people = GENERATOR
            .generate(Table::Person, 0, 150, 10)
            .expect("people");
        assert_eq!(int_column(&people, "id"), [1000, 1001, 1002]);
        let auctions = GENERATOR
            .generate(Table::Auction, 0, 100, 10)
            .expect("auctions");
        assert_eq!(
            int_column(&auctions, "id"),
            [1000, 1001, 1002, 1003, 1004, 1005]
        );
    }

    #[test]
    fn a_range_regenerates_the_same_events_wherever_it_starts() {
        for table in Table::ALL {
            let whole = GENERATOR.generate(table, 0, 5000, 333).expect("whole");
            let whole = datafusion::arrow::compute::concat_batches(&table.schema(), &whole)
                .expect("concat");
            let again = GENERATOR.generate(table, 0, 5000, 4096).expect("again");
            let again = datafusion::arrow::compute::concat_batches(&table.schema(), &again)
                .expect("concat");
            assert_eq!(whole, again, "{}: the same events", table.name());
            // Events 2500.. generated alone are the tail of the whole range.
            let tail = GENERATOR.generate(table, 2500, 5000, 100).expect("tail");
            let tail =
                datafusion::arrow::compute::concat_batches(&table.schema(), &tail).expect("concat");
            assert_eq!(
                whole.slice(whole.num_rows() - tail.num_rows(), tail.num_rows()),
                tail,
                "{}: a range alone",
                table.name()
            );
            let other_seed = Generator {
                seed: 8,
                ..GENERATOR
            }
            .generate(table, 0, 5000, 4096)
            .expect("other seed");
            assert_ne!(
                datafusion::arrow::compute::concat_batches(&table.schema(), &other_seed)
                    .expect("concat"),
                whole,
                "{}: another seed, other events",
                table.name()
            );
        }
    }

    #[test]
    fn times_ids_and_prices_follow_the_standard_distributions() {
        let n = 200_000;
        let bids = GENERATOR.generate(Table::Bid, 0, n, 8192).expect("bids");
        let auctions = GENERATOR
            .generate(Table::Auction, 0, n, 8192)
            .expect("auctions");
        let people = GENERATOR
            .generate(Table::Person, 0, n, 8192)
            .expect("people");
        // Event time: 1000 events a second from the base, so event n at base + n ms.
        let first = bids[0]
            .column_by_name("date_time")
            .expect("date_time")
            .as_primitive::<TimestampMillisecondType>()
            .value(0);
        assert_eq!(first, BASE_TIME_MS + 4, "event 4 is the first bid");
        // Every bid is on an auction that exists by then or is at most 10 ahead, and by a
        // person who exists.
        let last_auction = *int_column(&auctions, "id").last().expect("auctions");
        let last_person = *int_column(&people, "id").last().expect("people");
        let bid_auctions = int_column(&bids, "auction");
        let bidders = int_column(&bids, "bidder");
        assert!(
            bid_auctions
                .iter()
                .all(|a| (1000..=last_auction + 10).contains(a))
        );
        assert!(bidders.iter().all(|p| (1000..=last_person + 1).contains(p)));
        // Hot auctions (multiples of 100 from the first id) take about half the bids; hot
        // bidders (one past a multiple of 100) about three in four.
        let share = |v: &[i64], hot: &dyn Fn(i64) -> bool| {
            v.iter().filter(|x| hot(**x)).count() as f64 / v.len() as f64
        };
        let hot_auctions = share(&bid_auctions, &|a| (a - 1000) % 100 == 0);
        assert!((0.48..0.54).contains(&hot_auctions), "{hot_auctions}");
        let hot_bidders = share(&bidders, &|p| (p - 1000) % 100 == 1);
        assert!((0.73..0.78).contains(&hot_bidders), "{hot_bidders}");
        let sellers = int_column(&auctions, "seller");
        let hot_sellers = share(&sellers, &|p| (p - 1000) % 100 == 0);
        assert!((0.72..0.79).contains(&hot_sellers), "{hot_sellers}");
        // Prices: log10 uniform over [2, 8): the median about 10^5, all within [100, 10^8].
        let mut prices = int_column(&bids, "price");
        prices.sort_unstable();
        let median = prices[prices.len() / 2] as f64;
        assert!(
            (10f64.powf(4.9)..10f64.powf(5.1)).contains(&median),
            "{median}"
        );
        assert!(prices[0] >= 100 && *prices.last().expect("prices") <= 100_000_000);
        // Categories 10 to 14, each about a fifth.
        let categories = int_column(&auctions, "category");
        for c in 10..15 {
            let s = share(&categories, &|x| x == c);
            assert!((0.17..0.23).contains(&s), "category {c}: {s}");
        }
        // `extra` brings events to about the standard sizes (text bytes, 8 a number).
        let mean_size = |batches: &[RecordBatch]| {
            let mut bytes = 0usize;
            let mut rows = 0usize;
            for b in batches {
                rows += b.num_rows();
                for c in b.columns() {
                    bytes += match c.as_string_opt::<i32>() {
                        Some(text) => (0..text.len()).map(|i| text.value(i).len()).sum(),
                        None => 8 * c.len(),
                    };
                }
            }
            bytes as f64 / rows as f64
        };
        for (table, batches, standard) in [
            ("person", &people, AVG_PERSON_BYTES),
            ("auction", &auctions, AVG_AUCTION_BYTES),
            ("bid", &bids, AVG_BID_BYTES),
        ] {
            let size = mean_size(batches);
            let standard = standard as f64;
            assert!(
                (0.9 * standard..1.1 * standard).contains(&size),
                "{table}: {size} bytes"
            );
        }
    }
}
