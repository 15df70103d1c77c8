//! The lines of `history`: one per run of a migration, most recent first,
//! read from the records' logs, so `up`, `down`, `up` of one migration is
//! three lines. A record without a log (runs of versions before 0.2, a
//! baseline, a squash recorded without running) is one line, its last
//! operation; so is a record's state written after its last run (a claim
//! running now, a `resolve`). Pure: records in, lines out.

use chrono::{DateTime, Utc};

use crate::{Direction, HistoryQuery, LogEntry, LogEvent, MigrationStatus, Record};

/// One line of the history.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line<'r> {
    pub(crate) record: &'r Record,
    /// The run; none for the record's own state.
    pub(crate) run: Option<&'r LogEntry>,
}

impl Line<'_> {
    pub(crate) fn at(&self) -> DateTime<Utc> {
        self.run.map_or(self.record.updated_at, |r| r.at)
    }

    /// The status the line stands for: a run's end, as a record's status
    /// names it (a stopped walk is `running`: it resumes).
    pub(crate) fn status(&self) -> MigrationStatus {
        match self.run.map(|r| r.event) {
            None => self.record.status,
            Some(LogEvent::Applied) => MigrationStatus::Completed,
            Some(LogEvent::RolledBack) => MigrationStatus::RolledBack,
            Some(LogEvent::Failed) => MigrationStatus::Failed,
            Some(LogEvent::Stopped) => MigrationStatus::Running,
        }
    }

    pub(crate) fn direction(&self) -> Direction {
        self.run.map_or(self.record.direction, |r| r.direction)
    }

    pub(crate) fn batch(&self) -> i64 {
        self.run.map_or(self.record.batch, |r| r.batch)
    }
}

/// The lines of `records` that `query` asks for: most recent first, only
/// those of `query.status`, then `skip` and `limit` (none or 0: all).
pub(crate) fn lines<'r>(records: &'r [Record], query: &HistoryQuery) -> Vec<Line<'r>> {
    let mut out = Vec::new();
    for record in records {
        for run in &record.log {
            out.push(Line { record, run: Some(run) });
        }
        // The record's own state, when no run of its log says it.
        if record.log.last().is_none_or(|last| record.updated_at > last.at) {
            out.push(Line { record, run: None });
        }
    }
    out.retain(|l| query.status.is_none_or(|s| l.status() == s));
    // Runs recorded in the same millisecond: as a run goes, an `up` applies
    // the higher version later and a `down` rolls back the lower one later.
    out.sort_by(|a, b| {
        let later_version = match (a.direction(), b.direction()) {
            (Direction::Down, Direction::Down) => a.record.version.cmp(&b.record.version),
            _ => b.record.version.cmp(&a.record.version),
        };
        b.at().cmp(&a.at()).then(later_version)
    });
    let limit = match query.limit {
        None | Some(0) => usize::MAX,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    out.into_iter()
        .skip(usize::try_from(query.skip).unwrap_or(usize::MAX))
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn at(minute: u32) -> bson::DateTime {
        bson::DateTime::from_chrono(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
                .unwrap()
                .and_hms_opt(10, minute, 0)
                .unwrap()
                .and_utc(),
        )
    }

    fn run(event: &str, direction: &str, batch: i64, minute: u32) -> bson::Document {
        doc! { "event": event, "direction": direction, "batch": batch, "at": at(minute), "executionTimeMs": 5_i64 }
    }

    /// A record as the step writes leave it after `up`, `down`, `up`, a
    /// failed `up` of another and a record written before logs existed.
    fn records() -> Vec<Record> {
        let twice = doc! {
            "version": 20260101000000_i64, "name": "twice", "status": "completed", "direction": "up",
            "batch": 3_i64, "createdAt": at(0), "updatedAt": at(5),
            "log": [run("applied", "up", 1, 1), run("rolled-back", "down", 1, 3), run("applied", "up", 3, 5)],
        };
        let failing = doc! {
            "version": 20260102000000_i64, "name": "failing", "status": "failed", "direction": "up",
            "batch": 3_i64, "createdAt": at(0), "updatedAt": at(6), "error": "boom",
            "log": [{ "event": "failed", "direction": "up", "batch": 3_i64, "at": at(6), "executionTimeMs": 1_i64, "error": "boom" }],
        };
        let old = doc! {
            "version": 20251201000000_i64, "name": "old", "status": "completed",
            "batch": 1_i64, "createdAt": at(0), "updatedAt": at(0),
        };
        [twice, failing, old]
            .iter()
            .map(|d| Record::from_document(d).unwrap())
            .collect()
    }

    fn shown(lines: &[Line<'_>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{} {} {} {}", l.record.name, l.status(), l.direction(), l.batch()))
            .collect()
    }

    #[test]
    fn every_run_is_a_line_most_recent_first() {
        let records = records();
        assert_eq!(
            shown(&lines(&records, &HistoryQuery::default())),
            [
                "failing failed up 3",
                "twice completed up 3",
                "twice rolled-back down 1",
                "twice completed up 1",
                "old completed up 1",
            ]
        );
    }

    /// Two rollbacks in one millisecond: the lower version was rolled back
    /// last; two applies: the higher one was applied last.
    #[test]
    fn runs_of_one_millisecond_follow_the_run_s_order() {
        let record = |version: i64, log: bson::Document| {
            Record::from_document(&doc! {
                "version": version, "name": version.to_string(), "status": "completed", "batch": 1_i64,
                "createdAt": at(0), "updatedAt": at(2), "log": [run("applied", "up", 1, 1), log],
            })
            .unwrap()
        };
        let records = [
            record(20260101000000, run("rolled-back", "down", 1, 2)),
            record(20260102000000, run("rolled-back", "down", 1, 2)),
        ];
        let versions: Vec<String> = lines(&records, &HistoryQuery::default())
            .iter()
            .map(|l| format!("{} {}", l.record.version, l.direction()))
            .collect();
        assert_eq!(
            versions,
            [
                "20260101000000 down",
                "20260102000000 down",
                "20260102000000 up",
                "20260101000000 up"
            ]
        );
    }

    #[test]
    fn status_skip_and_limit_count_runs() {
        let records = records();
        let query = |status, skip, limit| HistoryQuery {
            status,
            skip,
            limit,
            runs: true,
        };
        assert_eq!(
            shown(&lines(&records, &query(Some(MigrationStatus::Completed), 0, None))),
            ["twice completed up 3", "twice completed up 1", "old completed up 1"]
        );
        assert_eq!(
            shown(&lines(&records, &query(None, 1, Some(2)))),
            ["twice completed up 3", "twice rolled-back down 1"]
        );
    }

    /// A claim running now (or a `resolve`) wrote the record after its last
    /// run: that state is the newest line.
    #[test]
    fn a_state_written_after_the_last_run_is_a_line_of_its_own() {
        let mut records = records();
        records[0].status = MigrationStatus::Running;
        records[0].updated_at = at(9).to_chrono();
        assert_eq!(
            shown(&lines(&records, &HistoryQuery::default()))[0],
            "twice running up 3"
        );
    }
}
