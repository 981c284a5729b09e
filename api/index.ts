// The read API server and its route modules (docs/timeline.md "Read API").
export { startApiServer, createRouter, apiPortFromEnv, DEFAULT_API_PORT, type ApiServerOptions, type RunningApi } from './server.ts';
export { Router, json, apiError, type ApiRequest, type AuthedRequest, type ApiResponse, type Handler, type AuthedHandler } from './router.ts';
export { bearerGuard } from './auth.ts';
export { registerTimelineRoutes, type TimelineRouteDeps } from './timeline-routes.ts';
