//! The whole configuration, read top-down section by section.

use toml::de::DeTable;
use toml::Spanned;

use crate::bank::{self, Bank, TemperatureClass};
use crate::cloud::{self, Sync};
use crate::network::{self, Mqtt, Web};
use crate::policies::{self, Policies};
use crate::raw::{Ctx, Table};
use crate::site::{self, Site};
use crate::validate;

/// A validated hub configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[site]`: identity, data directory, time zone.
    pub site: Site,
    /// `[mqtt]`: the embedded broker.
    pub mqtt: Mqtt,
    /// `[web]`: the LAN web page.
    pub web: Web,
    /// `[[bank]]`: the locker banks, in file order.
    pub banks: Vec<Bank>,
    /// `[policies]`: hold times, reminders, PINs, lockout.
    pub policies: Policies,
    /// `[sync]`: optional cloud sync.
    pub sync: Option<Sync>,
    /// `[notify]`: optional delivery of the outbox (email).
    pub notify: Option<crate::notify::Notify>,
    /// `[import]`: the rent-roll import (defaults when absent).
    pub import: crate::import::Import,
}

impl Config {
    /// One line for `check-config`: `"3 banks, 96 compartments, 2 refrigerated units"`.
    /// Units count refrigerated and frozen ones alike.
    pub fn summary(&self) -> String {
        let compartments: usize = self.banks.iter().map(|b| b.compartments.len()).sum();
        let units: usize = self.banks.iter().map(|b| b.units.len()).sum();
        format!(
            "{}, {}, {}",
            plural(self.banks.len(), "bank", "banks"),
            plural(compartments, "compartment", "compartments"),
            plural(units, "refrigerated unit", "refrigerated units")
        )
    }

    /// A bank by id.
    pub fn bank(&self, id: &str) -> Option<&Bank> {
        self.banks.iter().find(|b| b.id == id)
    }

    /// Number of compartments of a temperature class across all banks.
    pub fn count_compartments(&self, class: TemperatureClass) -> usize {
        self.banks
            .iter()
            .flat_map(|b| &b.compartments)
            .filter(|c| c.temperature == class)
            .count()
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Reads and checks the whole document. `None` means problems were recorded in `cx`.
pub(crate) fn read(doc: &Spanned<DeTable>, cx: &mut Ctx) -> Option<Config> {
    let mut root = Table::root(doc);
    let mut binds = Vec::new();
    let mut buses = Vec::new();

    let site = site::read(&mut root, cx);
    let mut observer_names = Vec::new();
    let mqtt = network::read_mqtt(&mut root, cx, &mut binds, &mut observer_names);
    let web = network::read_web(&mut root, cx, &mut binds);
    let mut banks = Vec::new();
    let mut banks_ok = true;
    // No banks is a valid state: a freshly installed hub runs (web page, broker) before its
    // banks are configured. The daemon warns about it at start-up.
    if let Some(list) = root.get("bank") {
        match list.array_of_tables(cx, "bank") {
            None => banks_ok = false,
            Some(entries) => {
                for entry in &entries {
                    match bank::read(entry, cx, &mut buses) {
                        Some(read) => {
                            banks_ok &= read.bank.is_some();
                            banks.push(read);
                        }
                        None => banks_ok = false,
                    }
                }
            }
        }
    }
    let policies = policies::read(&mut root, cx);
    let sync = cloud::read(&mut root, cx);
    let notify = crate::notify::read(&mut root, cx);
    let import = crate::import::read(&mut root, cx);
    root.finish(cx);

    network::check_clashes(&binds, cx);
    validate::check_banks(&banks, &observer_names, cx);
    validate::check_buses(&buses, cx);

    if cx.problem_count() > 0 || !banks_ok {
        return None;
    }
    Some(Config {
        site: site?,
        mqtt: mqtt?,
        web: web?,
        banks: banks.into_iter().filter_map(|b| b.bank).collect(),
        policies: policies?,
        sync: sync?,
        notify: notify?,
        import: import?,
    })
}
