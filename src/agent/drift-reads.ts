// The schedule both modes' drift checks share: the kernel's tables are read OUTSIDE the syncs (a
// periodic sync starts the read and goes on; at scale a read takes seconds and a Service change
// must not wait for it); the next sync takes the finished read and compares it with what it was
// started against, unless something was applied since (`generation` moved on: the picture is older
// than the kernel, and it is discarded). At most one read at a time; where checks take long, the
// next waits until checks have used at most a quarter of the wall time since.

/** The share of wall time drift checks may take (reading the tables and comparing). */
const CHECK_TIME_SHARE = 0.25;

export interface DeferredCheck {
  readonly kind: 'deferred';
  readonly dueInMs: number;
  readonly seconds: 0;
}

interface Read<Applied, Picture> {
  readonly applied: Applied;
  readonly generation: number;
  readonly started: number;
  /** Set when the read has finished: its picture and when it ended. */
  done: { readonly picture: Picture; readonly ended: number } | undefined;
  settled: Promise<void>;
}

export class DriftReads<Applied, Picture> {
  /** When the next check may start (monotonic ms). */
  private notBefore = Number.NEGATIVE_INFINITY;
  private read: Read<Applied, Picture> | undefined;
  /** The last finished read was older than an apply and thrown away: nothing was compared. */
  lastReadDiscarded = false;

  /** `readPicture` never rejects: a failed read is a picture that says so. It may compare with
   * `applied` itself, off the sync path. */
  constructor(
    private readonly readPicture: (applied: Applied) => Promise<Picture>,
    private readonly monotonic: () => number,
  ) {}

  /** Starts a read when none is under way and the budget allows; 'deferred' when the budget holds it back. */
  start(applied: Applied, generation: number): DeferredCheck | undefined {
    if (this.read !== undefined) return undefined;
    const started = this.monotonic();
    if (started < this.notBefore) return { kind: 'deferred', dueInMs: Math.ceil(this.notBefore - started), seconds: 0 };
    const read: Read<Applied, Picture> = { applied, generation, started, done: undefined, settled: Promise.resolve() };
    read.settled = this.readPicture(applied).then((picture) => {
      read.done = { picture, ended: this.monotonic() };
    });
    this.read = read;
    return undefined;
  }

  /**
   * The finished read compared (`compare`) with what it was started against, if nothing was
   * applied since; undefined when no read has finished or the finished one was discarded.
   * `seconds`: the read and the comparison.
   */
  take<Outcome>(generation: number, compare: (applied: Applied, picture: Picture) => Outcome): { readonly outcome: Outcome; readonly seconds: number } | undefined {
    const read = this.read;
    if (read?.done === undefined) return undefined;
    this.read = undefined;
    const { picture, ended } = read.done;
    this.lastReadDiscarded = read.generation !== generation;
    if (this.lastReadDiscarded) {
      this.spent(read.started, ended - read.started);
      return undefined;
    }
    const compareStart = this.monotonic();
    const outcome = compare(read.applied, picture);
    const spentMs = ended - read.started + (this.monotonic() - compareStart);
    this.spent(read.started, spentMs);
    return { outcome, seconds: spentMs / 1000 };
  }

  /** Whether start() would begin a read now (none under way, the budget allows one). */
  due(): boolean {
    return this.read === undefined && this.monotonic() >= this.notBefore;
  }

  /** Resolves once the read under way (if any) has finished; for tests and shutdown. */
  async readSettled(): Promise<void> {
    await this.read?.settled;
  }

  private spent(started: number, spentMs: number): void {
    this.notBefore = started + spentMs / CHECK_TIME_SHARE;
  }
}
