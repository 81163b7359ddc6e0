"""Geometry: GeoJSON boundaries, CAP polygons and circles resolved to division codes, area files."""

from __future__ import annotations

import json
import math

import pytest
from pyproj import Geod
from sqlalchemy import func, select

from warnpub.audiences.areas import (
    liyang_csv,
    load_areas,
    load_areas_file,
    load_areas_geojson,
    parse_areas_geojson,
)
from warnpub.audiences.geometry import (
    AreaIndex,
    GeometryError,
    cap_circle,
    cap_polygon,
    codes_for_shapes,
    validate_geometry,
)
from warnpub.audiences.tables import Area, Device, Person
from warnpub.cap.model import Circle
from warnpub.cli.main import main
from warnpub.problems import Problem

WGS84 = Geod(ellps="WGS84")

SHEZHU_TOWN = "320481116000"  # 社渚镇
SHEZHU = "320481116200"  # 社渚村: polygon
XIAXI = "320481116201"  # 下西村: polygon, shares an edge with 社渚村 at lon 119.32
WANGJIA = "320481116202"  # 王家村: no polygon, one resident with coordinates
XINTANG = "320481116203"  # 新塘村: no polygon, one loudspeaker with coordinates
DAIBU_TOWN = "320481103000"  # 戴埠镇: a town polygon, no village polygons
DAIBEI = "320481103206"  # 戴北村, in 戴埠镇, no polygon
DONGTANG = "320481109214"  # 东塘村: a MultiPolygon of two boxes with a gap between


def box(west: float, south: float, east: float, north: float) -> list[list[float]]:
    """A GeoJSON ring ([lon, lat], counter-clockwise)."""
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


def cap_box(west: float, south: float, east: float, north: float) -> list[tuple[float, float]]:
    """The same rectangle as a CAP polygon: (lat, lon) points."""
    return [(lat, lon) for lon, lat in box(west, south, east, north)]


def feature(code: str, name: str, level: str, parent: str, geometry: dict | None) -> dict:
    properties = {"code": code, "name": name, "level": level, "parent_code": parent}
    return {"type": "Feature", "properties": properties, "geometry": geometry}


BOUNDARIES = {
    "type": "FeatureCollection",
    "features": [
        feature(SHEZHU, "社渚村", "village", "320481116",
                {"type": "Polygon", "coordinates": [box(119.30, 31.40, 119.32, 31.42)]}),
        feature(XIAXI, "下西村", "village", "320481116",
                {"type": "Polygon", "coordinates": [box(119.32, 31.40, 119.34, 31.42)]}),
        feature(DAIBU_TOWN, "戴埠镇", "town", "320481",
                {"type": "Polygon", "coordinates": [box(119.40, 31.20, 119.50, 31.30)]}),
        feature(DONGTANG, "东塘村", "village", "320481109",
                {"type": "MultiPolygon", "coordinates": [[box(119.10, 31.60, 119.12, 31.62)],
                                                         [box(119.15, 31.60, 119.17, 31.62)]]}),
        feature(WANGJIA, "王家村", "village", "320481116", None),
    ],
}  # fmt: skip


async def build_world(db) -> None:
    async with db.session() as s:
        await load_areas(s, liyang_csv())
        await load_areas_geojson(s, json.dumps(BOUNDARIES))
        s.add(Person(name="王家村村民", area_code=WANGJIA, lat=31.45, lon=119.31))
        # A data error: this person's coordinates lie far outside 社渚村's polygon. The polygon
        # rules for areas that have one, so these coordinates never select 社渚村.
        s.add(Person(name="坐标有误", area_code=SHEZHU, lat=31.55, lon=119.55))
        s.add(
            Device(
                kind="speaker_group",
                name="新塘村应急广播",
                area_code=XINTANG,
                address=f"warnpub/speakers/{XINTANG}",
                lat=31.46,
                lon=119.36,
            )
        )


# 1 degree of longitude at 31.41N is 95.10 km on WGS 84, so 社渚村's west edge (lon 119.30) is
# 1.902 km east of the point 31.41N 119.28E.
TARGETING = [
    # (description, CAP polygons, CAP circles as (lat, lon, km), expected codes)
    ("polygon inside one village", [cap_box(119.305, 31.405, 119.31, 31.41)], [], [SHEZHU]),
    ("polygon across two neighbouring villages", [cap_box(119.31, 31.405, 119.33, 31.41)], [], [SHEZHU, XIAXI]),
    ("polygon only touching a village's edge", [cap_box(119.34, 31.40, 119.35, 31.42)], [], []),
    ("polygon given lon,lat by mistake hits nothing", [[(lon, lat) for lat, lon in cap_box(119.305, 31.405, 119.31, 31.41)]], [], []),
    ("polygon in the gap of a MultiPolygon village", [cap_box(119.13, 31.605, 119.14, 31.615)], [], []),
    ("polygon over the second part of a MultiPolygon", [cap_box(119.16, 31.605, 119.18, 31.615)], [], [DONGTANG]),
    ("town polygon when the town has no village polygons", [cap_box(119.45, 31.25, 119.46, 31.26)], [], [DAIBU_TOWN]),
    ("open CAP polygon is closed", [cap_box(119.305, 31.405, 119.31, 31.41)[:-1]], [], [SHEZHU]),
    ("circle of 0.5 km in one village", [], [(31.41, 119.31, 0.5)], [SHEZHU]),
    ("circle of radius 0: the centre point", [], [(31.41, 119.33, 0.0)], [XIAXI]),
    ("circle across both villages", [], [(31.41, 119.32, 3.0)], [SHEZHU, XIAXI]),
    ("circle ending 2.7 % short of a village", [], [(31.41, 119.28, 1.85)], []),
    ("circle reaching 2.5 % into a village", [], [(31.41, 119.28, 1.95)], [SHEZHU]),
    ("circle around a resident of a village without polygon", [], [(31.45, 119.31, 0.5)], [WANGJIA]),
    ("polygon around a device of a village without polygon", [cap_box(119.355, 31.455, 119.365, 31.465)], [], [XINTANG]),
    ("coordinates of a person in a village with a polygon are ignored", [], [(31.55, 119.55, 1.0)], []),
    ("two shapes at once", [cap_box(119.16, 31.605, 119.18, 31.615)], [(31.41, 119.31, 0.5)], [SHEZHU, DONGTANG]),
    ("nothing there", [cap_box(119.0, 31.0, 119.01, 31.01)], [(31.0, 119.0, 1.0)], []),
]  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize(
    "description,polygons,circles,expected", TARGETING, ids=[row[0] for row in TARGETING]
)
async def test_shapes_resolve_to_codes(db, description, polygons, circles, expected):
    await build_world(db)
    async with db.session() as s:
        codes = await codes_for_shapes(
            s, polygons, [Circle(lat=lat, lon=lon, radius_km=km) for lat, lon, km in circles]
        )
    assert codes == sorted(expected), description


@pytest.mark.postgres
async def test_a_prebuilt_index_gives_the_same_codes(db):
    await build_world(db)
    async with db.session() as s:
        index = AreaIndex.build(
            (
                await s.execute(select(Area.code, Area.geometry).where(Area.code.like("320481%")))
            ).all()
        )
        assert set(index.codes) == {SHEZHU, XIAXI, DAIBU_TOWN, DONGTANG}
        circle = [Circle(lat=31.41, lon=119.32, radius_km=3.0)]
        assert await codes_for_shapes(s, [], circle, index=index) == [SHEZHU, XIAXI]


def test_an_unusable_stored_boundary_is_skipped_not_fatal(caplog):
    good = json.dumps(BOUNDARIES["features"][0]["geometry"])
    index = AreaIndex.build(
        [
            (SHEZHU, good),
            (XIAXI, '{"type": "Point", "coordinates": [119.33, 31.41]}'),
            (WANGJIA, "{oops"),
            (
                XINTANG,
                '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}',
            ),
            ("320481000000", good),  # a county polygon is not used for targeting
        ]
    )
    assert index.codes == (SHEZHU,)
    for code in (XIAXI, WANGJIA, XINTANG):
        assert f"area {code}: its stored boundary is not a valid" in caplog.text


def test_cap_points_are_lat_lon_and_shapes_are_lon_lat():
    shape = cap_polygon([(31.40, 119.30), (31.40, 119.32), (31.42, 119.32), (31.40, 119.30)])
    assert shape.bounds == (119.30, 31.40, 119.32, 31.42)  # (min lon, min lat, max lon, max lat)
    circle = cap_circle(31.4, 119.4, 5.0)
    assert circle.centroid.x == pytest.approx(119.4, abs=1e-6)
    assert circle.centroid.y == pytest.approx(31.4, abs=1e-3)


def test_a_self_crossing_cap_polygon_is_repaired_not_refused():
    bow_tie = [(31.40, 119.30), (31.42, 119.32), (31.40, 119.32), (31.42, 119.30), (31.40, 119.30)]
    shape = cap_polygon(bow_tie)
    assert shape.is_valid and shape.area > 0


@pytest.mark.parametrize("radius_km", [0.1, 1.0, 5.0, 25.0, 100.0])
@pytest.mark.parametrize("lon", [119.1, 119.4])
def test_circle_radius_within_one_percent_at_liyang(lon, radius_km):
    """Every vertex and every edge midpoint lies within 1 % of the radius (WGS 84 geodesic)."""
    lat = 31.4
    ring = list(cap_circle(lat, lon, radius_km).exterior.coords)[:-1]
    midpoints = [
        ((x1 + x2) / 2, (y1 + y2) / 2)
        for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True)
    ]
    errors = []
    for x, y in ring + midpoints:
        _, _, metres = WGS84.inv(lon, lat, x, y)
        errors.append(abs(metres / 1000 - radius_km) / radius_km)
    assert max(errors) < 0.01
    # The polygon's area agrees with pi r^2 as well.
    area_m2, _ = WGS84.geometry_area_perimeter(cap_circle(lat, lon, radius_km))
    assert abs(abs(area_m2) / 1e6 / (math.pi * radius_km**2) - 1) < 0.01


@pytest.mark.parametrize(
    "lat,lon,radius_km,message",
    [
        (31.4, 119.4, -1.0, "must be 0 or more"),
        (95.0, 119.4, 1.0, "out of range"),
        (89.9, 0.0, 50.0, "reaches a pole"),
        (0.0, 179.99, 5.0, "180th meridian"),
    ],
)
def test_unusable_circles_are_refused(lat, lon, radius_km, message):
    with pytest.raises(GeometryError, match=message):
        cap_circle(lat, lon, radius_km)


SQUARE = box(119.30, 31.40, 119.32, 31.42)
BAD_GEOJSON = [
    # (description, geometry, message fragment)
    ("not an object", [[119.3, 31.4]], "must be a GeoJSON object"),
    ("a point", {"type": "Point", "coordinates": [119.3, 31.4]}, "'Point' is not supported"),
    ("no coordinates", {"type": "Polygon"}, "Coordinates must be a list of linear rings"),
    ("no rings", {"type": "Polygon", "coordinates": []}, "The polygon has no rings"),
    ("ring of three positions", {"type": "Polygon", "coordinates": [SQUARE[:3]]}, "ring 1 (the outer boundary) has 3 position(s); a ring needs at least 4"),
    ("open ring", {"type": "Polygon", "coordinates": [[*SQUARE[:4], [119.30, 31.41]]]}, "is not closed"),
    ("lat,lon order", {"type": "Polygon", "coordinates": [[[lat, lon] for lon, lat in SQUARE]]}, "position 1: latitude 119.3 is out of range (-90 to 90); GeoJSON puts longitude first"),
    ("longitude out of range", {"type": "Polygon", "coordinates": [[[200, 31.4], *SQUARE[1:4], [200, 31.4]]]}, "longitude 200.0 is out of range"),
    ("position not numbers", {"type": "Polygon", "coordinates": [[["119.3", "31.4"], *SQUARE[1:]]]}, "is not a [lon, lat] pair of numbers"),
    ("self-crossing ring", {"type": "Polygon", "coordinates": [[[119.30, 31.40], [119.32, 31.42], [119.32, 31.40], [119.30, 31.42], [119.30, 31.40]]]}, "is not a valid shape (Self-intersection"),
    ("hole outside the shell", {"type": "Polygon", "coordinates": [SQUARE, box(119.40, 31.40, 119.41, 31.41)]}, "is not a valid shape"),
    ("empty MultiPolygon", {"type": "MultiPolygon", "coordinates": []}, "has no polygons"),
    ("bad ring in the second polygon", {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE[:4]]]}, "polygon 2, ring 1 (the outer boundary) is not closed"),
]  # fmt: skip


@pytest.mark.parametrize(
    "description,geometry,message", BAD_GEOJSON, ids=[row[0] for row in BAD_GEOJSON]
)
def test_bad_geojson_is_refused_with_a_clear_reason(description, geometry, message):
    with pytest.raises(GeometryError) as refused:
        validate_geometry(geometry)
    assert message in str(refused.value), description


def test_valid_geojson_becomes_a_shape_in_lon_lat():
    shape = validate_geometry(BOUNDARIES["features"][3]["geometry"])
    assert shape.geom_type == "MultiPolygon"
    assert shape.bounds == pytest.approx((119.10, 31.60, 119.17, 31.62))
    with_hole = validate_geometry(
        {"type": "Polygon", "coordinates": [SQUARE, box(119.305, 31.405, 119.31, 31.41)]}
    )
    assert with_hole.area == pytest.approx(0.02 * 0.02 - 0.005 * 0.005)


# --- loading area files -------------------------------------------------------------------


def collection(*features: object) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


GOOD = feature(SHEZHU, "社渚村", "village", "320481116", BOUNDARIES["features"][0]["geometry"])
BAD_FILES = [
    # (description, file text, expected (field, message fragment) pairs)
    ("not JSON", "{oops", [("", "not valid JSON")]),
    ("not a FeatureCollection", json.dumps({"type": "Feature"}), [("", "must be a FeatureCollection")]),
    ("features not a list", json.dumps({"type": "FeatureCollection", "features": {}}), [("", "features must be a list")]),
    ("a feature that is not a Feature", collection(GOOD, [1, 2]), [("feature 2", '"type": "Feature"')]),
    ("properties missing", collection({"type": "Feature", "geometry": None}), [("feature 1", "properties must be an object")]),
    ("a required property missing", collection({"type": "Feature", "properties": {"code": SHEZHU}, "geometry": None}), [("feature 1", "properties lack name, level, parent_code")]),
    ("bad code, bad level, bad class", collection(GOOD, feature("12345", "x", "village", "320481116", None), {**feature("320481116299", "x", "hamlet", "320481116", None), "properties": {**feature("320481116299", "x", "hamlet", "320481116", None)["properties"], "urban_rural": "999"}}),
     [("feature 2", "'12345' is not a division code"), ("feature 3", "level 'hamlet'"), ("feature 3", "urban_rural '999'")]),
    ("bad geometry", collection(GOOD, feature("320481116298", "y", "village", "320481116", {"type": "Polygon", "coordinates": [SQUARE[:4]]})), [("feature 2 geometry", "is not closed")]),
    ("unknown parent and a duplicate", collection(GOOD, GOOD, feature("320481999200", "z", "village", "320481999", None)),
     [("feature 2", "appears twice"), ("code 320481999200", "parent 320481999000 is not a known area")]),
]  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize("description,text,expected", BAD_FILES, ids=[row[0] for row in BAD_FILES])
async def test_bad_geojson_area_files_load_nothing(db, tmp_path, description, text, expected):
    async with db.session() as s:
        await load_areas(s, liyang_csv())
    path = tmp_path / "areas.geojson"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Problem) as refused:
        async with db.session() as s:
            await load_areas_file(s, path)
    problem = refused.value
    assert problem.status == 422
    found = [(e.field, e.message) for e in problem.errors]
    for field, fragment in expected:
        if field:
            assert any(f == field and fragment in m for f, m in found), (description, found)
        else:
            assert fragment in problem.detail, (description, problem.detail)
    assert len(found) == len([f for f, _ in expected if f])
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Area).where(Area.code == "320481116298")) == 0  # fmt: skip
        assert (await s.get(Area, SHEZHU)).geometry is None


@pytest.mark.postgres
async def test_geojson_and_csv_files_load_and_csv_keeps_boundaries(db, tmp_path):
    geojson, csv = tmp_path / "boundaries.json", tmp_path / "areas.csv"
    geojson.write_text(json.dumps(BOUNDARIES), encoding="utf-8")
    csv.write_text(liyang_csv(), encoding="utf-8")
    async with db.session() as s:
        assert await load_areas_file(s, csv) == 33
        assert await load_areas_file(s, geojson) == len(BOUNDARIES["features"])
    async with db.session() as s:  # loading the CSV again does not wipe the boundaries
        await load_areas_file(s, csv)
    async with db.session() as s:
        assert (await s.get(Area, SHEZHU)).geometry == BOUNDARIES["features"][0]["geometry"]
        assert (await s.get(Area, DONGTANG)).geometry["type"] == "MultiPolygon"
        assert (await s.get(Area, WANGJIA)).geometry is None


def test_geojson_properties_may_be_numbers_and_flags():
    text = collection(
        {
            "type": "Feature",
            "properties": {
                "code": 320481116299,
                "name": "合成村",
                "level": "village",
                "parent_code": 320481116,
                "urban_rural": 220,
                "synthetic": True,
            },
            "geometry": None,
        }
    )
    (area,) = parse_areas_geojson(text, known=["320481116000"])
    assert (area.code, area.parent_code, area.urban_rural, area.synthetic) == (
        "320481116299",
        "320481116000",
        "220",
        True,
    )


def test_areas_load_command_reads_geojson(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WARNPUB_DATABASE_URL", settings.database.url)
    csv, geojson = tmp_path / "areas.csv", tmp_path / "areas.geojson"
    csv.write_text(liyang_csv(), encoding="utf-8")
    geojson.write_text(json.dumps(BOUNDARIES), encoding="utf-8")
    assert main(["areas", "load", str(csv)]) == 0
    assert main(["areas", "load", str(geojson)]) == 0
    assert f"loaded {len(BOUNDARIES['features'])} areas" in capsys.readouterr().out
    geojson.write_text(collection(GOOD, GOOD), encoding="utf-8")
    assert main(["areas", "load", str(geojson)]) == 2
    assert "feature 2: code 320481116200 appears twice" in capsys.readouterr().err
