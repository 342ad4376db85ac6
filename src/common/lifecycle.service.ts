import { Injectable } from '@nestjs/common';

/** Set when SIGTERM arrives: readiness turns 503 so the load balancer drains us. */
@Injectable()
export class LifecycleService {
  draining = false;
}
