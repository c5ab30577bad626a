//! The shortest path through the whole connector: link one athlete on the web, sync, see the data.

use polar_sim::{GenerateRequest, UploadMode};
use testkit::world::{World, WorldOptions};

#[tokio::test]
async fn an_athlete_links_on_the_web_and_their_data_lands_in_smartabase() {
    let world = World::on_moto(WorldOptions::default()).await.unwrap();
    let user = world.add_athlete("ath-1", "Ada", "Lovelace");
    let polar_user = world.polar_account(120);

    world.scan().await.unwrap();
    let linked = world.link_via_web("ath-1", polar_user).await.unwrap();
    assert_eq!(linked.status, 200, "{}", linked.text());

    world
        .polar
        .generate(
            polar_user,
            &GenerateRequest {
                days: 3,
                upload: UploadMode::Now,
                ..GenerateRequest::default()
            },
        )
        .unwrap();
    let run = world.run_worker().await.unwrap();
    assert_eq!(run.failed, 0);
    let sleeps = world.smartabase.events_for(user.get(), "Polar Sleep");
    assert!(!sleeps.is_empty(), "no sleep events landed");
    assert!(
        world.smartabase.dropped_fields().is_empty(),
        "{:?}",
        world.smartabase.dropped_fields()
    );
}
