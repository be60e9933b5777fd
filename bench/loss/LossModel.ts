// Packet-loss models for the UDP loss proxy: none, random (Bernoulli) and bursty
// (Gilbert-Elliott). Each model decides, packet by packet, whether to drop.
import { type Random, seededRandom } from './random.js';

export interface LossModel {
	/** Short description for tables ("random 10%", "bursty 10% (burst 3)"). */
	readonly label: string;
	/** Long-run share of packets dropped (0..1). */
	readonly meanLossRate: number;
	/** True when this packet is to be dropped. */
	drop(): boolean;
}

export type LossSpec =
	| { kind: 'none' }
	| { kind: 'random'; lossRate: number }
	/** Two-state Markov model. In the simple Gilbert form (the default) the good state loses
	 * nothing and the bad state loses everything, so bursts are runs of the bad state. */
	| { kind: 'bursty'; lossRate: number; meanBurstLength: number };

export class NoLoss implements LossModel {
	readonly label = 'none';
	readonly meanLossRate = 0;
	drop(): boolean {
		return false;
	}
}

/** Independent losses with probability `lossRate`. */
export class BernoulliLoss implements LossModel {
	readonly label: string;
	readonly meanLossRate: number;
	readonly #random: Random;

	constructor(lossRate: number, random: Random) {
		if (!(lossRate >= 0 && lossRate <= 1)) throw new RangeError(`lossRate must be in [0, 1] (got ${lossRate})`);
		this.meanLossRate = lossRate;
		this.label = `random ${pct(lossRate)}`;
		this.#random = random;
	}

	drop(): boolean {
		return this.#random() < this.meanLossRate;
	}
}

/**
 * Gilbert-Elliott loss: a good and a bad state; each packet first moves between states, then
 * is lost with the state's loss probability. Parameterised by the mean loss rate and the mean
 * burst length: with lossInBad = 1 and lossInGood = 0 (the simple Gilbert model), a burst is a
 * run of bad states, so P(bad -> good) = 1 / meanBurstLength and P(good -> bad) follows from the
 * stationary share of bad states: pBad = q / (q + r) = lossRate.
 */
export class GilbertElliottLoss implements LossModel {
	readonly label: string;
	readonly meanLossRate: number;
	readonly meanBurstLength: number;
	/** P(good -> bad) and P(bad -> good) per packet. */
	readonly goodToBad: number;
	readonly badToGood: number;
	readonly #random: Random;
	#bad = false;

	constructor(lossRate: number, meanBurstLength: number, random: Random) {
		if (!(lossRate >= 0 && lossRate < 1)) throw new RangeError(`lossRate must be in [0, 1) (got ${lossRate})`);
		if (!(meanBurstLength >= 1)) throw new RangeError(`meanBurstLength must be >= 1 (got ${meanBurstLength})`);
		this.badToGood = 1 / meanBurstLength;
		this.goodToBad = (lossRate * this.badToGood) / (1 - lossRate);
		if (this.goodToBad > 1) {
			throw new RangeError(`a loss rate of ${pct(lossRate)} needs bursts longer than ${meanBurstLength} packets (at most L/(1+L) is reachable)`);
		}
		this.meanLossRate = lossRate;
		this.meanBurstLength = meanBurstLength;
		this.label = `bursty ${pct(lossRate)} (burst ${meanBurstLength})`;
		this.#random = random;
		// Start in the stationary distribution so short runs are not biased towards "good".
		this.#bad = random() < lossRate;
	}

	drop(): boolean {
		const r = this.#random();
		this.#bad = this.#bad ? r >= this.badToGood : r < this.goodToBad;
		return this.#bad;
	}
}

export function createLossModel(spec: LossSpec, seed: number): LossModel {
	const random = seededRandom(seed);
	switch (spec.kind) {
		case 'none':
			return new NoLoss();
		case 'random':
			return spec.lossRate === 0 ? new NoLoss() : new BernoulliLoss(spec.lossRate, random);
		case 'bursty':
			return spec.lossRate === 0 ? new NoLoss() : new GilbertElliottLoss(spec.lossRate, spec.meanBurstLength, random);
	}
}

/** Measured loss rate and mean burst length of a drop sequence (bursts = runs of drops). */
export function measureLoss(drops: ArrayLike<boolean>): { lossRate: number; meanBurstLength: number; bursts: number } {
	let lost = 0;
	let bursts = 0;
	for (let i = 0; i < drops.length; i++) {
		if (!drops[i]) continue;
		lost++;
		if (i === 0 || !drops[i - 1]) bursts++;
	}
	return { lossRate: drops.length ? lost / drops.length : 0, meanBurstLength: bursts ? lost / bursts : 0, bursts };
}

function pct(rate: number): string {
	return `${+(rate * 100).toFixed(2)}%`;
}
