import { blackponyProgram } from './program.js';

await blackponyProgram().parseAsync(process.argv);
