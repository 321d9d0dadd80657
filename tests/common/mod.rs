//! Helpers shared by the integration tests (`mod common;` in each test file).

use mappedpages::{CrashLength, CrashPoint, SectorSize};

/// The crash images the integration tests check at one sync: the durable image alone and with
/// every in-flight sector (at both file lengths), each single in-flight sector alone, and all
/// but each single one, with a name for each.
pub fn crash_images(snapshot: &CrashPoint, sector: SectorSize) -> Vec<(String, Vec<u8>)> {
    let in_flight = snapshot.in_flight_sectors(sector);
    let mut images = Vec::new();
    for length in [CrashLength::Durable, CrashLength::Current] {
        images.push((
            format!("{length:?} none"),
            snapshot.crash_image(sector, &[], length),
        ));
        images.push((
            format!("{length:?} all"),
            snapshot.crash_image(sector, &in_flight, length),
        ));
    }
    for (index, &sector_index) in in_flight.iter().enumerate() {
        images.push((
            format!("only sector {sector_index}"),
            snapshot.crash_image(sector, &[sector_index], CrashLength::Current),
        ));
        let mut all_but: Vec<u64> = in_flight.clone();
        all_but.remove(index);
        images.push((
            format!("all but sector {sector_index}"),
            snapshot.crash_image(sector, &all_but, CrashLength::Current),
        ));
    }
    images
}
