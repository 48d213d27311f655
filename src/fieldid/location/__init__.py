"""Location, coarse and accountable (issue 17.3).

With ``[location] enabled`` the field app sends, with a search, the place it was taken reduced on
the phone to a grid cell (:mod:`.cell`, default 0.01°); the server checks it is coarse and keeps
only that. Sensitive areas (:mod:`.areas`: GeoJSON polygons of a kind, loaded by an admin, or an
event a supervisor declares with its window) make a search there need a supervisor's prior
approval with a reason (:mod:`.approvals`) or refuse it, per kind (:mod:`.config`). The search
service applies the rule (:func:`fieldid.search.service.SearchService.search`); the transparency
report counts searches per area and cell, small cells suppressed. Off, nothing changes.
"""

from fieldid.location.areas import Area, add_area, areas_at, list_areas, parse_geometry, retire_area
from fieldid.location.cell import Cell, coarsen, parse_location
from fieldid.location.config import KINDS, LocationConfig

__all__ = [
    "KINDS",
    "Area",
    "Cell",
    "LocationConfig",
    "add_area",
    "areas_at",
    "coarsen",
    "list_areas",
    "parse_geometry",
    "parse_location",
    "retire_area",
]
