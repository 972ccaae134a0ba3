// Shared by the render tests: the options the rendered objects refer to by id.
#pragma once

#include "gridd/api/render.h"
#include "gridd/domain/lookups.h"

namespace gridd::api {

// One datacenter (1) and one operating system (5), as the seeded configuration has them.
inline RenderContext Context() {
  RenderContext context;
  context.datacenters = {domain::Option{1, "US-West-1", "US West 1 Datacenter"}};
  context.operating_systems = {domain::Option{5, "Debian 12 (64-bit)", "Debian GNU/Linux 12"}};
  return context;
}

}  // namespace gridd::api
