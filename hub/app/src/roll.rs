//! The rent-roll import as the web page and the API use it: a file read with the site's
//! settings (`[import]`) into rows (`locker-roll`), then planned or applied by the core
//! (`Core::plan_roll`, `Request::ImportRoll`) in one engine step.

use locker_config::{Import, RollPreset};
use locker_core::RollPlan;
use locker_roll::{Columns, DateOrder, Encoding, Field, Options, Preset, Roll, RollError};
use serde::Serialize;

/// Which export a file is: a system's preset, or the site's own columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Preset(Preset),
    Custom,
}

impl Layout {
    /// The name in the API, the form and the configuration.
    pub fn key(self) -> &'static str {
        match self {
            Layout::Preset(p) => p.key(),
            Layout::Custom => "custom",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Layout::Preset(p) => p.label(),
            Layout::Custom => "this site's columns ([import.columns])",
        }
    }

    pub fn from_key(key: &str) -> Option<Layout> {
        match key {
            "custom" => Some(Layout::Custom),
            k => Preset::from_key(k).map(Layout::Preset),
        }
    }
}

/// The site's import settings.
#[derive(Clone, Debug)]
pub struct RollSettings {
    /// The layout staff get unless they choose another.
    pub default: Layout,
    custom: Option<Columns>,
    country_code: Option<String>,
    encoding: Encoding,
    date_order: DateOrder,
}

impl Default for RollSettings {
    fn default() -> Self {
        RollSettings::from(&Import::default())
    }
}

impl From<&Import> for RollSettings {
    fn from(i: &Import) -> Self {
        let default = match i.preset {
            RollPreset::Yardi => Layout::Preset(Preset::Yardi),
            RollPreset::Onesite => Layout::Preset(Preset::Onesite),
            RollPreset::Entrata => Layout::Preset(Preset::Entrata),
            RollPreset::ResMan => Layout::Preset(Preset::ResMan),
            RollPreset::RentManager => Layout::Preset(Preset::RentManager),
            RollPreset::Custom => Layout::Custom,
        };
        let custom = (!i.columns.is_empty()).then(|| {
            Columns::new(i.columns.iter().filter_map(|(field, headers)| {
                Field::ALL
                    .into_iter()
                    .find(|f| f.key() == field)
                    .map(|f| (f, headers.clone()))
            }))
        });
        RollSettings {
            default,
            custom,
            country_code: i.country_code.clone(),
            encoding: if i.windows_1252 {
                Encoding::Windows1252
            } else {
                Encoding::Utf8
            },
            date_order: if i.day_first {
                DateOrder::DayFirst
            } else {
                DateOrder::MonthFirst
            },
        }
    }
}

impl RollSettings {
    /// The layouts staff may choose from (the custom one when the site has it).
    pub fn layouts(&self) -> Vec<Layout> {
        let mut all: Vec<Layout> = Preset::ALL.into_iter().map(Layout::Preset).collect();
        if self.custom.is_some() {
            all.push(Layout::Custom);
        }
        all
    }

    /// The settings' encoding unless staff chose one.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Read a file as `layout` (the site's default when `None`).
    pub fn read(
        &self,
        bytes: &[u8],
        layout: Option<Layout>,
        encoding: Option<Encoding>,
    ) -> Result<Roll, String> {
        let layout = layout.unwrap_or(self.default);
        let columns = match layout {
            Layout::Preset(p) => p.columns(),
            Layout::Custom => match &self.custom {
                Some(c) => c.clone(),
                None => {
                    return Err(
                        "this site has no columns of its own: set [import.columns] in hub.toml"
                            .into(),
                    )
                }
            },
        };
        let options = Options {
            columns,
            encoding: encoding.unwrap_or(self.encoding),
            date_order: self.date_order,
            country_code: self.country_code.clone(),
        };
        locker_roll::read(bytes, &options).map_err(|e: RollError| e.to_string())
    }
}

/// What an import would do or did, for the page and the API.
#[derive(Clone, Debug, Serialize)]
pub struct RollReport {
    /// Applied (`false`: a dry run).
    pub applied: bool,
    pub source: String,
    /// How the file was read (absent for the JSON list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileReport>,
    pub plan: RollPlan,
}

/// How a file was read: its layout, header, delimiter, the columns found and the rows skipped.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    pub layout: &'static str,
    pub header_line: u64,
    pub delimiter: char,
    pub columns: Vec<(String, String)>,
    pub skipped: Vec<locker_roll::Skipped>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<locker_roll::Skipped>,
}

impl FileReport {
    pub fn new(layout: Layout, roll: &Roll) -> FileReport {
        FileReport {
            layout: layout.key(),
            header_line: roll.header_line,
            delimiter: roll.delimiter,
            columns: roll.found.clone(),
            skipped: roll.skipped.clone(),
            stopped_at: roll.stopped_at.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_preset_and_field_is_one_the_reader_knows() {
        for key in [
            "yardi",
            "onesite",
            "entrata",
            "resman",
            "rent_manager",
            "custom",
        ] {
            assert!(Layout::from_key(key).is_some(), "{key}");
        }
        for field in locker_config::ROLL_FIELDS {
            assert!(
                Field::ALL.iter().any(|f| f.key() == field),
                "{field} is not a reader field"
            );
        }
    }
}
