/**
 * A bounded FIFO of waiters. A waiter that gives up (its timeout) is removed
 * in O(1) by marking it; marked entries are skipped when they reach the head.
 * `length` counts the live ones only.
 */
export interface Waiting {
  /** Set when the waiter left the queue (served or gave up). */
  done: boolean;
}

export class WaitQueue<T extends Waiting> {
  private items: (T | undefined)[] = [];
  private head = 0;
  private live = 0;

  get length(): number {
    return this.live;
  }

  push(item: T): void {
    this.items.push(item);
    this.live++;
  }

  /** The oldest live waiter, or undefined. */
  peek(): T | undefined {
    this.skipDone();
    return this.items[this.head];
  }

  /** Removes and returns the oldest live waiter (marking it done). */
  shift(): T | undefined {
    this.skipDone();
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.items[this.head++] = undefined;
    item.done = true;
    this.live--;
    this.compact();
    return item;
  }

  /** Removes `item` wherever it is (it must be live). */
  remove(item: T): void {
    if (item.done) return;
    item.done = true;
    this.live--;
    this.skipDone();
  }

  /** Every live waiter, oldest first, emptying the queue. */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    return out;
  }

  private skipDone(): void {
    const items = this.items;
    while (this.head < items.length && (items[this.head] === undefined || items[this.head]!.done)) items[this.head++] = undefined;
    this.compact();
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
