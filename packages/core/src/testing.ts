export { SimulatedClock } from "./simulated-clock.js";
