/**
 * What the protocol sessions build with: one scheduler for the gateway, and the
 * settings every build gets. Sessions open a `Realisation` per request.
 */
import type { BasicDerivation } from '../../nix/protocol/types.js';
import type { LocalStore } from '../../store/local-store.js';
import { childExecutor } from './child-executor.js';
import { DerivationFiles } from './derivation-files.js';
import { LocalScheduler } from './local-scheduler.js';
import { Realisation, type RealiseEvents } from './realise.js';
import type { BuildOutcome, Scheduler } from './types.js';

export interface BuildSettings {
  /** Derivations built at once. */
  readonly maxJobs: number;
  /** NIX_BUILD_CORES of each build (0 = all cores). */
  readonly cores: number;
  /** Seconds; 0 = none. */
  readonly timeout: number;
  readonly maxSilentTime: number;
}

export interface RealisationRequest {
  readonly requester: string;
  readonly keepGoing: boolean;
  /** BuildMode Check: rebuild valid outputs and compare. */
  readonly check?: boolean;
  readonly keepRunning?: boolean;
  readonly events?: RealiseEvents;
}

export class BuildService {
  private constructor(
    readonly store: LocalStore,
    readonly scheduler: Scheduler,
    /** Derivations sent whole with BuildDerivation, for the scheduler to build from. */
    private readonly derivationFiles: DerivationFiles,
  ) {
    // What a crash left behind; nothing waits for it.
    void derivationFiles.cleanStale().catch(() => undefined);
  }

  /** The embedded default: builds run as `nixyard build-drv` children of this process. */
  static local(store: LocalStore, settings: BuildSettings): BuildService {
    const derivationFiles = new DerivationFiles(store.layout.dataDir);
    const executor = childExecutor({
      store,
      cores: settings.cores,
      timeout: settings.timeout,
      maxSilentTime: settings.maxSilentTime,
      derivationFile: (drvPath) => derivationFiles.of(drvPath)?.path,
    });
    return new BuildService(store, new LocalScheduler(executor, settings.maxJobs), derivationFiles);
  }

  /**
   * Builds go to `scheduler` (cluster mode: `kubernetesBuilds` in kubernetes-scheduler.ts),
   * which finds derivations sent whole in `derivationFiles`.
   */
  static withScheduler(
    store: LocalStore,
    scheduler: Scheduler,
    derivationFiles: DerivationFiles,
  ): BuildService {
    return new BuildService(store, scheduler, derivationFiles);
  }

  realisation(request: RealisationRequest): Realisation {
    return new Realisation({ store: this.store, scheduler: this.scheduler, ...request });
  }

  /**
   * BuildDerivation: builds a derivation the client sent whole (its .drv need not be
   * here; every input is a source that must be valid).
   */
  async buildBasic(drvPath: string, basic: BasicDerivation, realisation: Realisation): Promise<BuildOutcome> {
    return this.derivationFiles.with(drvPath, basic, () => realisation.submitted(drvPath));
  }

  close(): Promise<void> {
    return this.scheduler.close();
  }
}
